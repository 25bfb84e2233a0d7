"""Resignation in self-play, and the played-out games that count the false resignations."""

from __future__ import annotations

import numpy as np
from conftest import TICTACTOE as GAME
from conftest import decode, selfplay

from azjobs.search.selfplay import ResignCounts, SyncEvaluator, play_games, play_pipelined

KNOBS = {"num_simulations": 16, "resign_value": -0.9}


def first_player_doomed(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A network sure that the first player loses, whatever the board says."""
    first_to_move = decode(planes)[:, 9] % 2 == 0
    values = np.where(first_to_move, -0.99, 0.99).astype(np.float32)
    return np.zeros((len(planes), 9), np.float32), values


def test_a_lost_player_resigns_and_loses() -> None:
    resign = ResignCounts()
    records = play_games(
        GAME,
        selfplay(**KNOBS, resign_playout_share=0.0),
        first_player_doomed,
        20,
        np.random.default_rng(0),
        resign=resign,
    )
    assert resign.resigned == 20 and resign.checked == 0
    assert (records.results == -1).all()  # the first player resigned: the second won
    assert (records.game_lengths == 1).all()  # at its first move
    np.testing.assert_array_equal(records.value, -1)  # that position is a loss for its player to move
    np.testing.assert_allclose(records.policy.sum(axis=1), 1, atol=1e-6)


def test_played_out_games_count_the_false_resignations() -> None:
    resign = ResignCounts()
    records = play_games(
        GAME,
        selfplay(**KNOBS, resign_playout_share=1.0),
        first_player_doomed,
        30,
        np.random.default_rng(1),
        resign=resign,
    )
    assert resign.resigned == 0 and resign.checked == 30  # every game played out; the first player would resign
    assert (records.game_lengths >= 5).all()
    assert resign.false == (records.results != -1).sum() > 0  # the games the first player did not lose


def test_a_share_of_the_games_is_played_out() -> None:
    resign = ResignCounts()
    records = play_pipelined(
        GAME,
        selfplay(**KNOBS, resign_playout_share=0.25),
        SyncEvaluator(first_player_doomed, GAME.planes_shape),
        400,
        np.random.default_rng(2),
        games_in_flight=32,
        resign=resign,
    )
    assert resign.resigned + resign.checked == 400
    assert 0.18 < resign.checked / 400 < 0.32
    assert (records.game_lengths == 1).sum() == resign.resigned


def test_no_resignation_by_default(perfect) -> None:
    resign = ResignCounts()
    records = play_games(
        GAME, selfplay(num_simulations=16, temperature_moves=2), perfect, 40, np.random.default_rng(3), resign=resign
    )
    assert resign == ResignCounts()
    lost = records.value == -1
    assert lost.any()  # positions lost for their player were played on


def test_against_perfect_play_no_resignation_is_false(perfect) -> None:
    """With exact values, whoever resigns after the sampled opening moves is lost: the measured rate is 0.
    (Mean values of a lost position stay above -1: the search tries the winner's mistakes too.)"""
    resign = ResignCounts()
    config = selfplay(
        num_simulations=50, resign_value=-0.5, resign_playout_share=0.5, temperature_moves=2, dirichlet_fraction=0.0
    )
    play_games(GAME, config, perfect, 200, np.random.default_rng(4), resign=resign)
    assert resign.checked > 0 and resign.false == 0
    assert resign.resigned > 0
