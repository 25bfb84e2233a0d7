"""Gomoku against hand-checked wins, lines that must not win, a drawn full board and a whole-board reference."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import get_game
from azjobs.games.gomoku import GOMOKU as GAME
from azjobs.games.gomoku import GOMOKU15, Gomoku
from azjobs.games.testing import (
    check_batch_matches_single,
    check_encoding,
    check_random_playouts,
    check_symmetries,
    perft,
)
from azjobs.run import resolve

DIRECTIONS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal \\": (1, 1), "diagonal /": (1, -1)}
# A full 9x9 board (41 black, 40 white) without five in a row anywhere.
DRAWN = [
    "XXOOXXOOX",
    "OOXXOOXXO",
    "XXOOXXOOX",
    "OOXXOOXXO",
    "XXOOXXOOX",
    "OOXXOOXXO",
    "XXOOXXOOX",
    "OOXXOOXXO",
    "XXOOXXOOX",
]


def ref_fives(board: np.ndarray) -> set[tuple[int, str]]:
    """Reference: (player, direction) of every run of five anywhere on the board (row 0 = top as drawn)."""
    n, found = len(board), set()
    padded = np.pad(board, 5)  # empty all around, so a run never leaves the board unnoticed
    for name, (dr, dc) in DIRECTIONS.items():
        steps = [padded[5 + i * dr : 5 + i * dr + n, 5 + i * dc : 5 + i * dc + n] for i in range(5)]  # [5][N, N]
        for player in (1, -1):
            if np.logical_and.reduce([step == player for step in steps]).any():
                found.add((player, name))
    return found


def _play_stones(black: str, white: str, game: Gomoku = GAME) -> np.ndarray:
    """The state after black and white alternate on the cells given (black's list may be one longer)."""
    b, w = game.parse_moves(black), game.parse_moves(white)
    assert len(b) - len(w) in (0, 1)
    order = [cell for pair in zip(b, w) for cell in pair] + b[len(w) :]
    return game.state_after(order)


# Each: black's stones, white's (elsewhere, harmless), who wins, and what it shows.
WINS = [
    ("a1 b1 c1 d1 e1", "a9 c9 e9 g9", "X", "horizontal on the bottom edge, from the corner"),
    ("e9 f9 g9 h9 i9", "a1 c1 e1 g1", "X", "horizontal on the top edge, into the corner"),
    ("i1 i2 i3 i4 i5", "a1 a3 a5 a7", "X", "vertical on the right edge"),
    ("a9 a8 a7 a6 a5", "c1 e1 g1 i1", "X", "vertical on the left edge, from the top corner"),
    ("a1 b2 c3 d4 e5", "a9 c9 e9 g9", "X", "rising diagonal from the bottom left corner"),
    ("e5 f6 g7 h8 i9", "a1 c1 e1 g1", "X", "rising diagonal into the top right corner"),
    ("i1 h2 g3 f4 e5", "a9 c9 e9 g9", "X", "falling diagonal from the bottom right corner"),
    ("a9 b8 c7 d6 e5", "a1 c1 e1 g1", "X", "falling diagonal from the top left corner"),
    ("c3 d3 f3 g3 e3", "a9 c9 e9 g9", "X", "horizontal, closed in the middle last"),
    ("b4 c5 d6 e7 f8", "a1 c1 e1 g1", "X", "rising diagonal off the main one"),
]
WHITE_WINS = [
    ("a9 c9 e9 g9 a7", "b5 c5 d5 e5 f5", "O", "white, horizontal in the middle"),
    ("a9 c9 e9 g9 a7", "e1 e2 e3 e4 e5", "O", "white, vertical from the bottom edge"),
    ("a9 c9 e9 g9 a7", "i5 h4 g3 f2 e1", "O", "white, rising diagonal from the bottom edge"),
]


@pytest.mark.parametrize(
    ("black", "white", "winner", "shows"), WINS + WHITE_WINS, ids=[w[3] for w in WINS + WHITE_WINS]
)
def test_five_in_a_row_wins(black: str, white: str, winner: str, shows: str) -> None:
    state = _play_stones(black, white)  # raises if the game ended before the last stone
    assert GAME.terminal_value(state[None])[0] == -1.0
    assert GAME.to_play(state[None])[0] == (1 if winner == "X" else 0)  # the loser is to move
    assert not GAME.legal_mask(state[None]).any()
    assert f"{winner} has five in a row" in GAME.render(state)
    assert ref_fives(_board(state)) == {(1 if winner == "X" else -1, _direction(shows))}
    moves = GAME.parse_moves(_order(black, white))
    before = GAME.state_after(moves[:-1])
    assert np.isnan(GAME.terminal_value(before[None])[0])
    assert GAME.legal_mask(before[None]).sum() == 81 - (len(moves) - 1)


def _order(black: str, white: str) -> str:
    b, w = black.split(), white.split()
    return " ".join([cell for pair in zip(b, w) for cell in pair] + b[len(w) :])


def _direction(shows: str) -> str:
    if "horizontal" in shows:
        return "horizontal"
    if "vertical" in shows:
        return "vertical"
    return "diagonal /" if "rising" in shows else "diagonal \\"  # as drawn, row 0 on top


def _board(state: np.ndarray, game: Gomoku = GAME) -> np.ndarray:
    return state[: game.cells].reshape(game.size, game.size)


# Lines that must not win: four, a gap, wrapping around an edge, mixed colours.
NOT_WINS = [
    ("a1 b1 c1 d1", "a9 c9 e9", "four"),
    ("a1 b1 c1 d1 f1", "a9 c9 e9 g9", "five stones with a gap"),
    ("f2 g2 h2 i2 a1", "a9 c9 e9 g9", "a row running off the right edge onto the next row"),
    ("i6 i7 i8 i9 i1", "c9 e9 g9 c7", "a column off the top edge, then its bottom cell (a negative index)"),
    ("f4 g5 h6 i7 a8", "a1 c1 e1 g1", "a diagonal running off the right edge onto the next row"),
    ("d9 c8 b7 a6 i6", "a1 c1 e1 g1", "a diagonal running off the left edge onto the row above"),
    ("a1 b1 c1 d1 f5", "e1 a9 c9 e9", "four closed by the other colour"),
]


@pytest.mark.parametrize(("black", "white", "shows"), NOT_WINS, ids=[n[2] for n in NOT_WINS])
def test_no_false_wins(black: str, white: str, shows: str) -> None:
    state = _play_stones(black, white)
    assert np.isnan(GAME.terminal_value(state[None])[0])
    assert GAME.legal_mask(state[None]).any()
    assert ref_fives(_board(state)) == set()


def test_an_overline_wins_in_free_style() -> None:
    state = _play_stones("a5 b5 c5 e5 f5 d5", "a1 c1 e1 g1 i1")  # d5 joins 3 and 2: six in a row
    assert GAME.terminal_value(state[None])[0] == -1.0


def test_a_full_board_without_five_is_a_draw() -> None:
    grid = np.array([[1 if ch == "X" else -1 for ch in row] for row in DRAWN])
    assert ref_fives(grid) == set() and (grid == 1).sum() == 41
    black = [r * 9 + c for r in range(9) for c in range(9) if grid[r, c] == 1]
    white = [r * 9 + c for r in range(9) for c in range(9) if grid[r, c] == -1]
    order = [cell for pair in zip(black, white) for cell in pair] + black[40:]
    state = GAME.state_after(order)
    assert GAME.terminal_value(state[None])[0] == 0.0
    assert not GAME.legal_mask(state[None]).any()
    assert GAME.render(state).splitlines()[-1] == "game over: a draw"
    np.testing.assert_array_equal(_board(state), grid)
    assert np.isnan(GAME.terminal_value(GAME.state_after(order[:-1])[None])[0])


@pytest.mark.parametrize("game", [GAME, GOMOKU15], ids=lambda g: g.name)
def test_matches_the_reference_on_random_games(game: Gomoku) -> None:
    rng, count = np.random.default_rng(5), 100
    states = np.repeat(game.initial_state()[None], count, axis=0)
    seen: set[tuple[int, str]] = set()
    while len(states):
        mask, values, planes = game.legal_mask(states), game.terminal_value(states), game.encode(states)
        for row, state in enumerate(states):
            board = _board(state, game)
            fives = ref_fives(board)
            seen |= fives
            full = (board != 0).all()
            np.testing.assert_equal(values[row], -1.0 if fives else 0.0 if full else np.nan)
            np.testing.assert_array_equal(mask[row], (board.reshape(-1) == 0) & (not fives))
            me = 1 if game.to_play(state[None])[0] == 0 else -1
            np.testing.assert_array_equal(planes[row], np.stack([board == me, board == -me]))
        states, mask = states[np.isnan(values)], mask[np.isnan(values)]
        if len(states):
            states = game.play(states, np.where(mask, rng.random(mask.shape), -1).argmax(axis=1))
    assert {d for _, d in seen} == set(DIRECTIONS)  # random games won in every direction


@pytest.mark.parametrize("game", [GAME, GOMOKU15], ids=lambda g: g.name)
def test_random_playouts_pass_rule_checks(game: Gomoku) -> None:
    summary = check_random_playouts(game, n_games=100, seed=3)
    assert set(np.unique(summary.outcomes)) >= {-1.0, 1.0}
    assert summary.lengths.min() >= 9 and summary.lengths.max() <= game.cells
    check_encoding(game, summary.states)
    check_batch_matches_single(game, summary.states, seed=4)
    check_symmetries(game, summary.states[::3], seed=4)
    assert perft(game, 2) == [game.cells, game.cells * (game.cells - 1)]


def test_symmetries_turn_wins_into_wins() -> None:
    state = GAME.state_after(GAME.parse_moves("a1 a9 b1 c9 c1 e9 d1 g9"))  # black threatens e1
    planes, mask = GAME.encode(state[None]), GAME.legal_mask(state[None]).astype(np.float32)
    win = np.zeros((1, 81), np.float32)
    win[0, GAME.parse_action("e1")] = 1
    for k in range(8):
        image_planes, image_win = GAME.symmetry(k, planes, win)
        _, image_mask = GAME.symmetry(k, planes, mask)
        # Rebuild a state from the image: same stones, black to move; the image of e1 wins there.
        board = (image_planes[0, 0].astype(np.int8) - image_planes[0, 1]).reshape(-1)
        image_state = np.concatenate([board, [0, 0]]).astype(np.int8)
        np.testing.assert_array_equal(GAME.legal_mask(image_state[None])[0], image_mask[0] > 0)
        after = GAME.play(image_state[None], np.array([image_win[0].argmax()]))
        assert GAME.terminal_value(after)[0] == -1.0


def test_notation() -> None:
    assert [GAME.action_to_str(a) for a in (0, 8, 40, 72, 80)] == ["a9", "i9", "e5", "a1", "i1"]
    assert GAME.parse_moves("e5 F6") == GAME.parse_moves("e5f6") == [40, 32]
    assert GOMOKU15.action_to_str(7 * 15 + 7) == "h8" and GOMOKU15.parse_moves("a15o1 o15") == [0, 224, 14]
    assert GOMOKU15.parse_moves("a10 b11") == [5 * 15, 4 * 15 + 1]
    for bad in ("j1", "a10", "a0", "e", "5", "pass", "e5,f6"):
        with pytest.raises(ValueError):
            GAME.parse_moves(bad)
    with pytest.raises(ValueError, match="write a1-i9"):
        GAME.parse_action("z1")


def test_render() -> None:
    lines = GAME.render(GAME.state_after(GAME.parse_moves("e5 a1"))).splitlines()
    assert lines[0] == lines[10] == "   a b c d e f g h i"
    assert lines[5] == " 5 . . . . X . . . . 5"
    assert lines[9] == " 1 O . . . . . . . . 1"
    assert lines[-1] == "X to move"


def test_registered_with_its_settings() -> None:
    assert get_game("gomoku") is GAME and get_game("gomoku15") is GOMOKU15
    assert (GAME.planes_shape, GAME.num_actions, GAME.num_symmetries) == ((2, 9, 9), 81, 8)
    assert (GOMOKU15.planes_shape, GOMOKU15.num_actions) == ((2, 15, 15), 225)
    assert (
        resolve(flags={"game": "gomoku15"}, environ={}).num_simulations == GOMOKU15.default_settings["num_simulations"]
    )
    with pytest.raises(ValueError, match="board size from 5 to 19"):
        Gomoku(4)
