"""The array engine against the simple search (reference.py), and the subtree it keeps after a move."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import reference

from azjobs.games import get_game
from azjobs.games.base import Game
from azjobs.search import Evaluate, SearchConfig, new_search, search
from azjobs.search.tree import NO_PARENT, ROOT, UNVISITED

GAMES = ["tictactoe", "connect4"]  # the generic kernel and the bitboard one


def hashed(game: Game, seed: int) -> Evaluate:
    """Logits and value from a hash of each position: the same answer whenever a position comes again."""

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = [np.random.default_rng([seed, zlib.crc32(p.tobytes())]) for p in planes]
        logits = np.array([r.normal(size=game.num_actions) for r in rows], np.float32).reshape(-1, game.num_actions)
        values = np.array([r.uniform(-1, 1) for r in rows], np.float32)
        return logits, values

    return evaluate


def random_positions(game: Game, count: int, seed: int, max_moves: int = 12) -> np.ndarray:
    """Positions after a few random moves, some of them finished games.  # [count, S]"""
    rng = np.random.default_rng(seed)
    states = np.repeat(game.initial_state()[None], count, axis=0)
    for i in range(count):
        for _ in range(rng.integers(0, max_moves)):
            legal = np.flatnonzero(game.legal_mask(states[i : i + 1])[0])
            if len(legal) == 0:
                break
            states[i] = game.play(states[i : i + 1], rng.choice(legal)[None])[0]
    return states


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("add_noise", [False, True])
def test_same_visits_and_values_as_the_simple_search(name: str, add_noise: bool) -> None:
    game = get_game(name)
    states = random_positions(game, 48, seed=1)
    evaluate = hashed(game, seed=2)
    got = search(
        game, states, evaluate, SearchConfig(num_simulations=40), np.random.default_rng(3), add_noise=add_noise
    )
    want = reference.search(
        game,
        states,
        evaluate,
        reference.SearchConfig(num_simulations=40),
        np.random.default_rng(3),
        add_noise=add_noise,
    )
    assert np.isnan(game.terminal_value(states)).sum() < len(states)  # finished games are among them
    np.testing.assert_array_equal(got.visits, want.visits)
    np.testing.assert_allclose(got.root_value, want.root_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.prior, want.prior, rtol=1e-5, atol=1e-7)


def subtree(s, b: int, node: int) -> dict[tuple[int, ...], tuple]:
    """Every node under `node` of game b by its path of actions: its statistics and state."""
    t, out, stack = s.tree, {}, [((), node)]
    while stack:
        path, n = stack.pop()
        out[path] = (
            int(t.node_visits[b, n]),
            float(t.node_value_sum[b, n]),
            t.children_visits[b, n].tolist(),
            t.prior[b, n].tolist(),
            t.state[b, n].tolist(),
            int(t.to_play[b, n]),
        )
        stack.extend((path + (a,), int(c)) for a, c in enumerate(t.children_index[b, n]) if c != UNVISITED)
    return out


def assert_consistent(s, b: int) -> None:
    """Links, counts and states of game b's tree agree with each other."""
    t, kernel = s.tree, s.kernel
    n = int(t.num_nodes[b])
    assert 1 <= n <= t.capacity and t.parent[b, ROOT] == NO_PARENT
    for node in range(1, n):
        up, a = t.parent[b, node], t.action_from_parent[b, node]
        assert 0 <= up < node and t.children_index[b, up, a] == node
        assert t.node_visits[b, node] == t.children_visits[b, up, a]
        np.testing.assert_array_equal(t.state[b, node], kernel.play(t.state[b, up][None], np.array([a]))[0])
    for node in range(n):
        if np.isnan(t.terminal_value[b, node]) and t.node_visits[b, node] > 0:
            assert t.node_visits[b, node] == 1 + t.children_visits[b, node].sum()
    children = t.children_index[b, :n]
    assert sorted(children[children != UNVISITED].tolist()) == list(range(1, n))


@pytest.mark.parametrize("name", GAMES)
def test_a_played_move_keeps_its_subtree(name: str) -> None:
    game = get_game(name)
    states = random_positions(game, 16, seed=4, max_moves=4)
    states = states[np.isnan(game.terminal_value(states))]
    evaluate = hashed(game, seed=5)
    s = new_search(game, states, SearchConfig(num_simulations=60), np.random.default_rng(6), add_noise=True)
    while not s.done:
        s.apply(*evaluate(s.pending_planes()))
    games = np.arange(len(states))
    actions = s.tree.children_visits[games, ROOT].argmax(axis=1)
    before = [subtree(s, b, int(s.tree.children_index[b, ROOT, a])) for b, a in zip(games, actions)]

    s.play(games, actions)

    network_prior = [kept[()][3] for kept in before]
    for b in games:
        after = subtree(s, b, ROOT)
        assert s.tree.num_nodes[b] == len(before[b]) == len(after)
        root, old_root = after.pop(()), before[b].pop(())
        assert after == before[b]
        assert root[:3] + root[4:] == old_root[:3] + old_root[4:]
        assert_consistent(s, b)
    # The new root's prior gets fresh noise; the network's own prior is what the result reports.
    assert not np.allclose(s.tree.prior[games, ROOT], network_prior)
    carried = s.tree.children_visits[games, ROOT].sum(axis=1)
    np.testing.assert_array_equal(s.remaining, 60 - carried)
    s.advance()
    evaluations = np.zeros(len(games), int)
    while not s.done:
        evaluations[s.pending_node != -1] += 1
        s.apply(*evaluate(s.pending_planes()))
    # The kept visits count toward the simulations: only the rest needs the network (or less, where
    # simulations end in terminal nodes).
    assert (evaluations <= 60 - carried).all() and evaluations.sum() > 0
    np.testing.assert_array_equal(s.result().visits.sum(axis=1), 60)
    np.testing.assert_array_equal(s.result().prior, network_prior)
    for b in games:
        assert_consistent(s, b)


@pytest.mark.parametrize("name", GAMES)
def test_without_reuse_the_next_search_is_a_fresh_one(name: str) -> None:
    game = get_game(name)
    states = random_positions(game, 8, seed=7, max_moves=3)
    states = states[np.isnan(game.terminal_value(states))]
    evaluate = hashed(game, seed=8)
    config = SearchConfig(num_simulations=30, reuse_tree=False)
    s = new_search(game, states, config, np.random.default_rng(9), add_noise=False)
    while not s.done:
        s.apply(*evaluate(s.pending_planes()))
    games = np.arange(len(states))
    actions = s.result().visits.argmax(axis=1)
    s.play(games, actions)
    assert (s.tree.num_nodes[games] == 1).all() and (s.pending_node[games] == -1).all()
    s.advance()
    while not s.done:
        s.apply(*evaluate(s.pending_planes()))
    after = np.stack([game.play(state[None], np.array([a]))[0] for state, a in zip(states, actions)])
    fresh = search(game, after, evaluate, config, np.random.default_rng(0), add_noise=False)
    np.testing.assert_array_equal(s.result().visits, fresh.visits)


def test_the_search_tree_is_never_bigger_than_simulations_plus_one() -> None:
    game = get_game("connect4")
    evaluate = hashed(game, seed=10)
    s = new_search(
        game,
        np.repeat(game.initial_state()[None], 6, axis=0),
        SearchConfig(num_simulations=25),
        np.random.default_rng(11),
        add_noise=True,
    )
    games = np.arange(6)
    for _ in range(12):  # the tree is reused move after move; its capacity is 26 nodes
        while not s.done:
            s.apply(*evaluate(s.pending_planes()))
        games = games[np.isnan(s.tree.terminal_value[games, ROOT])]
        s.play(games, s.tree.children_visits[games, ROOT].argmax(axis=1))
        s.advance()
        assert (s.tree.num_nodes <= 26).all()
        for b in games:
            assert_consistent(s, b)
