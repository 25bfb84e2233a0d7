"""Tic-tac-toe against known counts of the whole game tree and against the solver."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import get_game
from azjobs.games.solver import Solver
from azjobs.games.testing import check_encoding, check_random_playouts, check_symmetries
from azjobs.games.tictactoe import TICTACTOE as GAME


def _whole_tree() -> tuple[np.ndarray, dict[str, int]]:
    """Every node of the game tree, level by level in batches, and how the games end."""
    level = GAME.initial_state()[None]
    nodes = [level]
    ends = {"x": 0, "o": 0, "draw": 0}
    while len(level):
        parents, actions = np.nonzero(GAME.legal_mask(level))
        level = GAME.play(level[parents], actions)
        nodes.append(level)
        values = GAME.terminal_value(level)
        done = ~np.isnan(values)
        x_moved = GAME.to_play(level) == 1
        ends["x"] += int((done & (values == -1) & x_moved).sum())
        ends["o"] += int((done & (values == -1) & ~x_moved).sum())
        ends["draw"] += int((done & (values == 0)).sum())
        level = level[~done]
    return np.concatenate(nodes), ends


@pytest.fixture(scope="module")
def tree() -> tuple[np.ndarray, dict[str, int]]:
    return _whole_tree()


@pytest.fixture(scope="module")
def positions(tree: tuple[np.ndarray, dict[str, int]]) -> np.ndarray:
    nodes = np.ascontiguousarray(tree[0])
    rows = np.unique(nodes.view(f"V{GAME.state_size}").ravel())  # whole rows compared as bytes: fast
    return rows.view(np.int8).reshape(-1, GAME.state_size)  # every reachable position once, terminal ones too


def test_every_game_is_counted(tree: tuple[np.ndarray, dict[str, int]]) -> None:
    _, ends = tree
    assert ends == {"x": 131184, "o": 77904, "draw": 46080}
    assert sum(ends.values()) == 255168


def test_reachable_positions(positions: np.ndarray) -> None:
    assert len(positions) == 5478
    terminal = ~np.isnan(GAME.terminal_value(positions))
    assert int((~terminal).sum()) == len(Solver(GAME).reachable_states()) == 4520


def test_rule_checks_pass(positions: np.ndarray) -> None:
    summary = check_random_playouts(GAME, n_games=300, seed=1)
    assert set(np.unique(summary.outcomes)) == {-1.0, 0.0, 1.0}
    assert summary.lengths.min() >= 5 and summary.lengths.max() <= 9
    check_encoding(GAME, positions)
    # Every image of a reachable position is reachable, so each one must be found.
    assert check_symmetries(GAME, positions, seed=2, closed=True) == 8 * len(positions)


def test_symmetries_keep_solved_values(positions: np.ndarray) -> None:
    solver = Solver(GAME)
    ongoing = positions[np.isnan(GAME.terminal_value(positions))]
    planes = GAME.encode(ongoing)
    index = {row.tobytes(): i for i, row in enumerate(planes)}
    action_values = np.full((len(ongoing), 9), -9.0, dtype=np.float32)  # -9: illegal
    for i, state in enumerate(ongoing):
        for action, value in solver.action_values(state).items():
            action_values[i, action] = value
    for k in range(GAME.num_symmetries):
        image_planes, image_values = GAME.symmetry(k, planes, action_values)
        images = np.array([index[row.tobytes()] for row in image_planes])
        # The image position is worth the same, move for corresponding move.
        np.testing.assert_array_equal(image_values, action_values[images])


def test_hand_checked_positions() -> None:
    assert GAME.parse_moves("5 1 9") == GAME.parse_moves("519") == [4, 0, 8]
    state = GAME.state_after(GAME.parse_moves("1 4 2 5 3"))  # X takes the top row
    assert GAME.terminal_value(state[None])[0] == -1.0 and not GAME.legal_mask(state[None]).any()
    assert GAME.render(state).splitlines() == ["X X X", "O O .", ". . ."]
    assert Solver(GAME).value(GAME.initial_state()) == 0
    with pytest.raises(ValueError, match="illegal"):
        GAME.state_after(GAME.parse_moves("1 1"))
    for bad in ("0", "10", "a", ""):
        with pytest.raises(ValueError):
            GAME.parse_action(bad)
    assert get_game("tictactoe") is GAME
