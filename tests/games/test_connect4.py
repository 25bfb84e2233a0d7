"""Connect Four against hand-checked positions and a plain whole-board reference of the rules."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import get_game
from azjobs.games.connect4 import CONNECT4 as GAME
from azjobs.games.testing import check_encoding, check_random_playouts, check_symmetries
from azjobs.run import game_defaults, resolve

ROWS, COLS = 6, 7
DIRECTIONS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal /": (1, 1), "diagonal \\": (1, -1)}
# A full board with no four in a row anywhere.
DRAW = "446323116125713546635334125521577677446722"


def _fours(board: list[list[int]]) -> list[tuple[int, str]]:
    """Reference: (player, direction) of every four in a row, scanning the whole board (row 0 = bottom)."""
    found = []
    for r in range(ROWS):
        for c in range(COLS):
            for name, (dr, dc) in DIRECTIONS.items():
                cells = [(r + i * dr, c + i * dc) for i in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in cells):
                    marks = {board[rr][cc] for rr, cc in cells}
                    if len(marks) == 1 and 0 not in marks:
                        found.append((board[r][c], name))
    return found


def _planes_of(board: list[list[int]], mover: int) -> np.ndarray:
    """Reference encoding: the mover's stones, then the opponent's; plane row 0 is the top row."""
    grid = np.array(board[::-1], dtype=np.int8)  # [H, W] top row first
    return np.stack([grid == mover, grid == -mover]).astype(np.uint8)


def _state(moves: str) -> np.ndarray:
    return GAME.state_after(GAME.parse_moves(moves))


# (moves, winner, the four cells as (row from the bottom, column), both counted from 1)
WINS = [
    ("1122334", "X", [(1, 1), (1, 2), (1, 3), (1, 4)]),  # horizontal, bottom left corner
    ("14152627", "O", [(1, 4), (1, 5), (1, 6), (1, 7)]),  # horizontal, bottom right corner
    ("645646563315332544", "O", [(4, 3), (4, 4), (4, 5), (4, 6)]),  # horizontal, middle of the board
    ("354452255243762554374243233", "X", [(6, 2), (6, 3), (6, 4), (6, 5)]),  # horizontal, top row
    ("1212121", "X", [(1, 1), (2, 1), (3, 1), (4, 1)]),  # vertical, left edge
    ("4244141424", "O", [(3, 4), (4, 4), (5, 4), (6, 4)]),  # vertical, top of the middle column
    ("13444244233", "X", [(1, 1), (2, 2), (3, 3), (4, 4)]),  # rising diagonal from the corner
    ("7576766247444177556546", "O", [(3, 4), (4, 5), (5, 6), (6, 7)]),  # rising diagonal to the top corner
    ("422443525332253", "X", [(2, 5), (3, 4), (4, 3), (5, 2)]),  # falling diagonal, middle
    ("16464757574466554534", "O", [(3, 7), (4, 6), (5, 5), (6, 4)]),  # falling diagonal, right edge to top
]


@pytest.mark.parametrize(("moves", "winner", "cells"), WINS)
def test_wins_in_every_direction(moves: str, winner: str, cells: list[tuple[int, int]]) -> None:
    state = _state(moves)  # raises if the game had ended before the last move
    assert GAME.terminal_value(state[None])[0] == -1.0
    assert GAME.to_play(state[None])[0] == (1 if winner == "X" else 0)  # the loser is to move
    assert not GAME.legal_mask(state[None]).any()
    planes = GAME.encode(state[None])[0]
    for row, col in cells:
        assert planes[1, ROWS - row, col - 1] == 1  # the winner's stones are the opponent's plane
    before = _state(moves[:-1])
    assert np.isnan(GAME.terminal_value(before[None])[0]) and GAME.legal_mask(before[None]).any()
    with pytest.raises(ValueError, match="illegal"):
        _state(moves + "1")


def test_full_columns_become_illegal() -> None:
    state = _state("444444")
    np.testing.assert_array_equal(GAME.legal_mask(state[None])[0], [1, 1, 1, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"move 7 \(4\) is illegal"):
        _state("4444444")


def test_drawn_full_board() -> None:
    state = _state(DRAW)
    assert GAME.terminal_value(state[None])[0] == 0.0
    assert not GAME.legal_mask(state[None]).any()
    planes = GAME.encode(state[None])[0]
    assert planes.sum() == 42 and (planes[0] & planes[1]).sum() == 0
    board = [[0] * COLS for _ in range(ROWS)]
    for i, col in enumerate(GAME.parse_moves(DRAW)):
        board[sum(1 for r in range(ROWS) if board[r][col])][col] = 1 if i % 2 == 0 else -1
    assert _fours(board) == []
    assert np.isnan(GAME.terminal_value(_state(DRAW[:-1])[None])[0])


def test_notation() -> None:
    assert GAME.parse_moves("4 4 5 3") == GAME.parse_moves("4453") == GAME.parse_moves(" 44 53 ") == [3, 3, 4, 2]
    assert GAME.parse_moves("") == []
    assert [GAME.action_to_str(a) for a in range(7)] == list("1234567")
    for bad in ("8", "0", "x", "44x", "4 8", "12 3.5"):
        with pytest.raises(ValueError):
            GAME.parse_moves(bad)
    with pytest.raises(ValueError):
        GAME.parse_action("")
    with pytest.raises(ValueError, match="'8' is not a column"):
        GAME.parse_action("8")


def test_render() -> None:
    lines = GAME.render(_state("43")).splitlines()
    assert len(lines) == 7
    assert lines[-1] == "1 2 3 4 5 6 7"
    assert lines[-2] == ". . O X . . ."
    assert lines[0] == ". . . . . . ."


def test_planes_are_seen_by_the_player_to_move() -> None:
    after_x = GAME.encode(_state("4")[None])[0]  # O to move: X's stone is the opponent's
    assert after_x[0].sum() == 0 and after_x[1, 5, 3] == 1 and after_x[1].sum() == 1
    after_o = GAME.encode(_state("45")[None])[0]  # X to move
    assert after_o[0, 5, 3] == 1 and after_o[1, 5, 4] == 1 and after_o.sum() == 2
    assert GAME.encode(GAME.initial_state()[None]).sum() == 0


def test_mirror_symmetry() -> None:
    moves = "4453126"
    mirrored = "".join(str(8 - int(ch)) for ch in moves)
    planes = GAME.encode(np.stack([_state(moves), _state(mirrored)]))
    policy = np.arange(14, dtype=np.float32).reshape(2, 7)
    image_planes, image_policy = GAME.symmetry(1, planes, policy)
    np.testing.assert_array_equal(image_planes[0], planes[1])
    np.testing.assert_array_equal(image_policy[0], policy[0, ::-1])
    same_planes, same_policy = GAME.symmetry(0, planes, policy)
    np.testing.assert_array_equal(same_planes, planes)
    np.testing.assert_array_equal(same_policy, policy)
    full = _state("4444443")
    _, image_mask = GAME.symmetry(1, GAME.encode(full[None]), GAME.legal_mask(full[None]).astype(np.float32))
    np.testing.assert_array_equal(image_mask[0], [1, 1, 1, 0, 1, 1, 1])


def test_random_playouts_pass_rule_checks() -> None:
    summary = check_random_playouts(GAME, n_games=300, seed=3)
    assert set(np.unique(summary.outcomes)) <= {-1.0, 0.0, 1.0}
    assert (summary.outcomes == 1).any() and (summary.outcomes == -1).any()
    assert summary.lengths.min() >= 7 and summary.lengths.max() <= 42
    check_encoding(GAME, summary.states)
    assert check_symmetries(GAME, summary.states, seed=4) > len(summary.states)  # mirror images were met too


def test_matches_whole_board_reference_on_random_games() -> None:
    rng = np.random.default_rng(5)
    n = 400
    boards = [[[0] * COLS for _ in range(ROWS)] for _ in range(n)]
    states = np.repeat(GAME.initial_state()[None], n, axis=0)
    live = np.arange(n)
    seen = set()
    for ply in range(43):
        mover = 1 if ply % 2 == 0 else -1
        mask, values, planes = GAME.legal_mask(states), GAME.terminal_value(states), GAME.encode(states)
        for row, g in enumerate(live):
            fours, full = _fours(boards[g]), ply == 42
            seen.update((-mover, name) for _, name in fours)
            expected = -1.0 if fours else 0.0 if full else np.nan
            np.testing.assert_equal(values[row], expected)
            open_cols = [not fours and boards[g][ROWS - 1][c] == 0 for c in range(COLS)]
            np.testing.assert_array_equal(mask[row], open_cols)
            np.testing.assert_array_equal(planes[row], _planes_of(boards[g], mover))
        keep = np.isnan(values)
        states, live, mask = states[keep], live[keep], mask[keep]
        if not len(live):
            break
        actions = np.where(mask, rng.random(mask.shape), -1).argmax(axis=1)
        for g, col in zip(live, actions):
            boards[g][sum(1 for r in range(ROWS) if boards[g][r][col])][col] = mover
        states = GAME.play(states, actions)
    assert not len(live)
    assert seen == {(p, d) for p in (1, -1) for d in DIRECTIONS}  # every direction won by both players


def test_batched_matches_single() -> None:
    states = check_random_playouts(GAME, n_games=40, seed=6).states
    states = states[np.isnan(GAME.terminal_value(states))][::7]
    mask = GAME.legal_mask(states)
    actions = np.where(mask, np.random.default_rng(7).random(mask.shape), -1).argmax(axis=1)
    batched = GAME.play(states, actions)
    planes = GAME.encode(states)
    for i, state in enumerate(states):
        np.testing.assert_array_equal(GAME.play(state[None], actions[i : i + 1])[0], batched[i])
        np.testing.assert_array_equal(GAME.legal_mask(state[None])[0], mask[i])
        np.testing.assert_array_equal(GAME.encode(state[None])[0], planes[i])
    np.testing.assert_array_equal(GAME.terminal_value(batched), [GAME.terminal_value(s[None])[0] for s in batched])


def test_registered_with_its_settings() -> None:
    assert get_game("connect4") is GAME
    assert game_defaults("connect4")["num_simulations"] == 100
    settings = resolve(flags={"game": "connect4"}, environ={})
    assert (settings.net_blocks, settings.net_channels, settings.temperature_moves) == (4, 64, 10)
    # the strength-per-compute winners (README): playout cap randomization, FPU, forced playouts, resignation
    assert (settings.full_search_prob, settings.fpu_reduction, settings.forced_playouts, settings.resign_value) == (
        0.25,
        0.2,
        2.0,
        -0.9,
    )
    assert GAME.planes_shape == (2, 6, 7) and GAME.num_actions == 7 and GAME.num_symmetries == 2
