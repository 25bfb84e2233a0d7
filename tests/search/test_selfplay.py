"""Self-play records on tic-tac-toe: shapes, targets consistent with the results, perfect play draws."""

from __future__ import annotations

import itertools

import numpy as np

from azjobs.games import get_game
from azjobs.search import choose_moves, play_games
from azjobs.settings import Settings

GAME = get_game("tictactoe")


def settings(**changes: object) -> Settings:
    return Settings(game="tictactoe").replace(**changes)


def test_uniform_self_play_records(uniform) -> None:
    versions = itertools.count()
    records = play_games(GAME, settings(num_simulations=16, temperature_moves=4), uniform, 24,
                         np.random.default_rng(0), weights_version=lambda: next(versions))
    n = records.positions
    assert records.games == 24 and n == records.game_lengths.sum()
    assert records.planes.shape == (n, 2, 3, 3) and records.planes.dtype == np.uint8
    assert records.policy.shape == (n, 9) and records.policy.dtype == np.float32
    assert records.value.dtype == np.float32 and records.weights_version.dtype == np.int32
    assert records.results.dtype == np.int8 and records.game_lengths.dtype == np.int32
    np.testing.assert_allclose(records.policy.sum(axis=1), 1, rtol=1e-5)
    assert set(records.results) <= {-1, 0, 1} and len(set(records.results)) > 1
    assert records.game_lengths.min() >= 5 and records.game_lengths.max() <= 9


def test_positions_are_in_game_order_with_consistent_targets(uniform) -> None:
    versions = itertools.count()
    records = play_games(GAME, settings(num_simulations=8, temperature_moves=9), uniform, 16,
                         np.random.default_rng(1), weights_version=lambda: next(versions))
    game = np.repeat(np.arange(records.games), records.game_lengths)  # [N] game of each position
    move = np.concatenate([np.arange(length) for length in records.game_lengths])  # [N] move number
    stones = records.planes.reshape(records.positions, -1).sum(axis=1)
    np.testing.assert_array_equal(stones, move)  # each game from the empty board, one stone per move
    to_play = move % 2
    np.testing.assert_array_equal(records.value, np.where(to_play == 0, 1, -1) * records.results[game])
    # All games search together, so move m of every game was searched at step m.
    np.testing.assert_array_equal(records.weights_version, move)
    # The policy never puts weight on an occupied cell.
    occupied = records.planes.reshape(records.positions, 2, 9).any(axis=1)
    assert not records.policy[occupied].any()


def test_perfect_self_play_without_temperature_draws(perfect) -> None:
    records = play_games(GAME, settings(num_simulations=50, temperature_moves=0), perfect, 16,
                         np.random.default_rng(2))
    np.testing.assert_array_equal(records.results, 0)
    np.testing.assert_array_equal(records.game_lengths, 9)
    np.testing.assert_array_equal(records.value, 0)


def test_choose_moves_samples_by_visits_then_takes_the_most_visited() -> None:
    visits = np.array([[0, 3, 0, 1], [5, 0, 2, 0]], np.int32)
    greedy = choose_moves(visits, np.array([False, False]), np.random.default_rng(0))
    np.testing.assert_array_equal(greedy, [1, 0])
    rng = np.random.default_rng(0)
    samples = np.stack([choose_moves(visits, np.array([True, True]), rng) for _ in range(4000)])  # [4000, 2]
    counts = [np.bincount(samples[:, i], minlength=4) / len(samples) for i in range(2)]
    np.testing.assert_allclose(counts[0], [0, 0.75, 0, 0.25], atol=0.03)
    np.testing.assert_allclose(counts[1], [5 / 7, 0, 2 / 7, 0], atol=0.03)
