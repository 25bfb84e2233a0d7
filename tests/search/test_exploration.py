"""First-play urgency on a hand-built tree, forced playouts, and policy target pruning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import TICTACTOE as GAME
from conftest import selfplay

from azjobs.search import SearchConfig, new_search, puct
from azjobs.search.puct import prune_forced
from azjobs.search.tree import ROOT, Tree


def hand_built_tree() -> Tree:
    """A root (5 visits, mean value 0.2) with children
    a0: 3 visits, Q 0.3, prior 0.5 (node 1, itself with children b0: 2 visits, Q 0.5, prior 0.6;
        b1 unvisited, prior 0.4; node 1 has 3 visits, mean 0.1)
    a1: 1 visit, Q -0.5, prior 0.1 (node 2); a2, a3 unvisited, priors 0.3 and 0.1."""
    t = Tree.empty(1, 8, 4, 1)
    t.num_nodes[0] = 4
    t.legal[0, :3] = True
    t.node_visits[0, :3] = [5, 3, 1]
    t.node_value_sum[0, :3] = [1.0, 0.3, 0.5]
    t.parent[0, 1:4] = [ROOT, ROOT, 1]
    t.action_from_parent[0, 1:4] = [0, 1, 0]
    t.to_play[0, :4] = [0, 1, 1, 0]
    t.prior[0, ROOT] = [0.5, 0.1, 0.3, 0.1]
    t.children_index[0, ROOT, :2] = [1, 2]
    t.children_visits[0, ROOT] = [3, 1, 0, 0]
    t.children_value_sum[0, ROOT] = [0.9, -0.5, 0, 0]
    t.prior[0, 1] = [0.6, 0.4, 0, 0]
    t.legal[0, 1] = [True, True, False, False]
    t.children_index[0, 1, 0] = 3
    t.children_visits[0, 1] = [2, 0, 0, 0]
    t.children_value_sum[0, 1] = [1.0, 0, 0, 0]
    t.node_visits[0, 3] = 2
    t.legal[0, 3, :2] = True
    return t


def test_first_play_urgency_is_the_parent_mean_less_the_reduction() -> None:
    tree = hand_built_tree()
    # Scores with c_puct 1.5: a0 0.3 + 1.5 * sqrt(5) * 0.5 / 4 = 0.7193; a1 -0.332; the best unvisited,
    # a2: 0.2 - f * sqrt(0.5 + 0.1) + 1.5 * sqrt(5) * 0.3 = 1.2062 - 0.7746 f. They cross at f = 0.6286.
    assert puct.puct_action(tree, 0, ROOT, 1.5, 0.0) == 2
    assert puct.puct_action(tree, 0, ROOT, 1.5, 0.62) == 2
    assert puct.puct_action(tree, 0, ROOT, 1.5, 0.64) == 0
    assert puct.puct_action(tree, 0, ROOT, 1.5, 5.0) == 0


def test_the_root_and_the_inner_nodes_have_their_own_reduction() -> None:
    # Node 1: b0 0.5 + 1.5 * sqrt(3) * 0.6 / 3 = 1.0196;
    # b1 0.1 - f * sqrt(0.6) + 1.5 * sqrt(3) * 0.4 = 1.1392 - 0.7746 f.
    def select(fpu_root: float, fpu: float) -> tuple[int, int]:
        t = hand_built_tree()
        parent, action = np.empty(1, np.int32), np.empty(1, np.int32)
        remaining = np.array([1], np.int32)
        puct.select(t.for_steps(), np.array([0]), remaining, 1.5, fpu_root, fpu, 0.0, np.zeros(1, bool), parent, action)
        return int(parent[0]), int(action[0])

    assert select(0.0, 0.0) == (ROOT, 2)  # the root's unvisited a2
    assert select(1.0, 0.0) == (1, 1)  # down a0 to node 1, whose unvisited b1 still wins
    assert select(1.0, 0.2) == (3, 0)  # b1 drops to 0.984: on down b0 to node 3, whose first edge is new
    assert select(0.0, 5.0) == (ROOT, 2)  # the inner reduction leaves the root alone


def test_forced_playouts_give_each_tried_root_child_its_share() -> None:
    rng = np.random.default_rng(0)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(size=(len(planes), 9)).astype(np.float32) * 2, rng.uniform(-1, 1, len(planes)).astype(
            np.float32
        )

    states = np.repeat(GAME.initial_state()[None], 32, axis=0)
    short = {}
    for k in (0.0, 2.0):
        s = new_search(
            GAME,
            states,
            SearchConfig(num_simulations=200, forced_playouts=k, reuse_tree=False),
            np.random.default_rng(1),
            add_noise=True,
        )
        while not s.done:
            s.apply(*evaluate(s.pending_planes()))
        visits, prior = s.tree.children_visits[:, ROOT], s.tree.prior[:, ROOT]  # prior with the noise
        assert (visits.sum(axis=1) == 200).all()
        due = np.floor(np.sqrt(2 * prior * 200)) - 1  # the last forced visit may still have been due
        short[k] = ((visits > 0) & (visits < due)).sum()
    assert short[0.0] > 0 and short[2.0] == 0  # without forcing, some tried children get fewer


def test_no_forced_playouts_without_noise() -> None:
    config = SearchConfig(num_simulations=30, forced_playouts=2.0)
    states = GAME.initial_state()[None]
    a = new_search(GAME, states, config, np.random.default_rng(0), add_noise=False)
    b = new_search(GAME, states, SearchConfig(num_simulations=30), np.random.default_rng(0), add_noise=False)
    for s in (a, b):
        while not s.done:
            s.apply(np.zeros((s.pending_count, 9), np.float32), np.zeros(s.pending_count, np.float32))
    np.testing.assert_array_equal(a.result().visits, b.result().visits)
    np.testing.assert_allclose(a.policy_targets([0]), a.result().visits / 30)  # nothing pruned either


def test_pruning_takes_the_forced_visits_off() -> None:
    # sqrt(101) * 0.5 / 51 = 0.0985 is the best child's PUCT; the others keep their Q below it after losing
    # all sqrt(2 P N) of their visits, so they lose exactly that many.
    got = prune_forced(
        np.array([[50.0, 40, 10]]), np.array([[0.0, 0.0, -0.5]]), np.array([[0.5, 0.3, 0.2]]), np.array([101]), 1.0, 2.0
    )
    np.testing.assert_allclose(got, [[50, 40 - math.sqrt(60), 10 - math.sqrt(40)]])


def test_pruning_stops_where_the_child_would_look_better_than_the_best() -> None:
    # Equal priors and values: one visit fewer would make the second child the PUCT choice.
    got = prune_forced(np.array([[50.0, 45]]), np.array([[0.0, 0.0]]), np.array([[0.5, 0.5]]), np.array([96]), 1.0, 2.0)
    np.testing.assert_allclose(got, [[50, 45]])
    # In between: PUCT(best) = 0.05 + sqrt(96) * 0.5 / 51 = 0.1461; the second child (Q 0) may keep
    # no fewer than sqrt(96) * 0.5 / 0.1461 - 1 = 32.54 visits. With k = 2 its sqrt(2 * 0.5 * 95) = 9.75
    # forced visits all go (35.25 left); with k = 20, 30.8 of them would, and the floor holds.
    floor = math.sqrt(96) * 0.5 / (0.05 + math.sqrt(96) * 0.5 / 51) - 1
    for k, kept in ((2.0, 45 - math.sqrt(95)), (20.0, floor)):
        got = prune_forced(
            np.array([[50.0, 45]]), np.array([[0.05, 0.0]]), np.array([[0.5, 0.5]]), np.array([96]), 1.0, k
        )
        np.testing.assert_allclose(got, [[50, kept]])


def test_pruning_drops_children_left_with_one_visit() -> None:
    got = prune_forced(
        np.array([[50.0, 2, 0]]), np.array([[0.0, -0.9, 0]]), np.array([[0.8, 0.1, 0.1]]), np.array([53]), 1.0, 2.0
    )
    np.testing.assert_allclose(got, [[50, 0, 0]])


@pytest.mark.parametrize("k", [0.0, 2.0])
def test_self_play_targets_with_forced_playouts_are_distributions(k: float, uniform) -> None:
    from azjobs.search.selfplay import play_games

    records = play_games(GAME, selfplay(num_simulations=40, forced_playouts=k), uniform, 6, np.random.default_rng(2))
    np.testing.assert_allclose(records.policy.sum(axis=1), 1, atol=1e-5)
    assert (records.policy >= 0).all()
