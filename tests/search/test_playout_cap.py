"""Playout cap randomization: cheap searches without noise, full ones flagged as the policy targets."""

from __future__ import annotations

import numpy as np
from conftest import TICTACTOE as GAME
from conftest import selfplay

from azjobs.search import SearchConfig, new_search
from azjobs.search.selfplay import SyncEvaluator, play_games, play_pipelined
from azjobs.search.tree import ROOT


def logits_and_values(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, uneven prior (so that noise shows) and zero values."""
    return np.tile(np.linspace(-1, 1, 9, dtype=np.float32), (len(planes), 1)), np.zeros(len(planes), np.float32)


def test_cheap_searches_have_their_budget_and_no_noise() -> None:
    config = SearchConfig(num_simulations=40, cheap_simulations=10)
    states = np.repeat(GAME.initial_state()[None], 4, axis=0)
    s = new_search(GAME, states, config, np.random.default_rng(0), add_noise=True, full=[True, False, True, False])
    evaluations = 0
    while not s.done:
        evaluations += s.pending_count
        s.apply(*logits_and_values(s.pending_planes()))
    visits = s.result().visits.sum(axis=1)
    np.testing.assert_array_equal(visits, [40, 10, 40, 10])
    network = logits_and_values(states[:1])[0]
    network = np.exp(network - network.max()) / np.exp(network - network.max()).sum()
    np.testing.assert_allclose(s.tree.prior[[1, 3], ROOT], np.repeat(network, 2, axis=0), rtol=1e-6)
    assert not np.allclose(s.tree.prior[[0, 2], ROOT], np.repeat(network, 2, axis=0))  # Dirichlet noise
    # The next search of game 1 is a full one: its kept root gets noise and the full budget.
    s.play(np.array([1]), np.array([int(s.result([1]).visits[0].argmax())]), np.array([True]))
    s.advance()
    while not s.done:
        s.apply(*logits_and_values(s.pending_planes()))
    assert s.result([1]).visits.sum() == 40
    assert not np.allclose(s.tree.prior[1, ROOT, s.tree.legal[1, ROOT]], s.result([1]).prior[0][s.tree.legal[1, ROOT]])


def test_the_default_cheap_budget_is_a_quarter() -> None:
    assert SearchConfig(num_simulations=100).cheap_budget == 25
    assert SearchConfig(num_simulations=2).cheap_budget == 1
    assert SearchConfig(num_simulations=30, cheap_simulations=50).cheap_budget == 30


def test_self_play_flags_the_full_searches(uniform) -> None:
    config = selfplay(num_simulations=16, full_search_prob=0.25)
    counted = []

    def counting(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counted.append(len(planes))
        return uniform(planes)

    records = play_pipelined(
        GAME, config, SyncEvaluator(counting, GAME.planes_shape), 200, np.random.default_rng(1), games_in_flight=32
    )
    assert set(np.unique(records.policy_weight)) == {0.0, 1.0}
    assert 0.18 < records.policy_weight.mean() < 0.32
    full = play_pipelined(
        GAME,
        selfplay(num_simulations=16, full_search_prob=1.0),
        SyncEvaluator(uniform, GAME.planes_shape),
        200,
        np.random.default_rng(1),
        games_in_flight=32,
    )
    assert (full.policy_weight == 1).all()
    # A quarter of the moves at 16 simulations and the rest at 4 cost well under half the evaluations.
    assert sum(counted) < 0.5 * 16 * records.positions


def test_with_every_search_full_the_cheap_budget_changes_nothing(uniform) -> None:
    """full_search_prob 1 (the default) draws no random numbers for the flags: the same games."""
    a = play_games(GAME, selfplay(num_simulations=12), uniform, 6, np.random.default_rng(3))
    b = play_games(GAME, selfplay(num_simulations=12, cheap_simulations=3), uniform, 6, np.random.default_rng(3))
    np.testing.assert_array_equal(a.planes, b.planes)
    np.testing.assert_array_equal(a.policy, b.policy)
