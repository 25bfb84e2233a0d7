"""Othello against published perft counts, hand-checked positions and a plain whole-board reference."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import get_game
from azjobs.games.othello import OTHELLO as GAME
from azjobs.games.othello import OTHELLO6, Othello
from azjobs.games.testing import (
    check_batch_matches_single,
    check_encoding,
    check_random_playouts,
    check_symmetries,
    perft,
)
from azjobs.run import resolve

DIRECTIONS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
PASS = 64


# A plain reference of the rules: a list of rows (1 black, -1 white, 0 empty), one game at a time.


def ref_flips(board: list[list[int]], r: int, c: int, me: int) -> list[tuple[int, int]]:
    n = len(board)
    if board[r][c]:
        return []
    flips = []
    for dr, dc in DIRECTIONS:
        line, rr, cc = [], r + dr, c + dc
        while 0 <= rr < n and 0 <= cc < n and board[rr][cc] == -me:
            line.append((rr, cc))
            rr, cc = rr + dr, cc + dc
        if line and 0 <= rr < n and 0 <= cc < n and board[rr][cc] == me:
            flips += line
    return flips


def ref_moves(board: list[list[int]], me: int) -> dict[int, list[tuple[int, int]]]:
    n = len(board)
    found = {r * n + c: ref_flips(board, r, c, me) for r in range(n) for c in range(n)}
    return {cell: flips for cell, flips in found.items() if flips}


def ref_play(board: list[list[int]], cell: int, me: int) -> None:
    n = len(board)
    for r, c in ref_flips(board, cell // n, cell % n, me) + [divmod(cell, n)]:
        board[r][c] = me


def ref_start(n: int) -> list[list[int]]:
    board = [[0] * n for _ in range(n)]
    m = n // 2
    board[m - 1][m - 1] = board[m][m] = -1  # white on d4 and e5 (8x8)
    board[m - 1][m] = board[m][m - 1] = 1  # black on e4 and d5
    return board


def ref_perft(board: list[list[int]], me: int, depth: int) -> int:
    moves = ref_moves(board, me)
    if not moves:
        return (1 if depth == 1 else ref_perft(board, -me, depth - 1)) if ref_moves(board, -me) else 0
    if depth == 1:
        return len(moves)
    total = 0
    for cell in moves:
        child = [row[:] for row in board]
        ref_play(child, cell, me)
        total += ref_perft(child, -me, depth - 1)
    return total


def _state(moves: str, game: Othello = GAME) -> np.ndarray:
    return game.state_after(game.parse_moves(moves))


def _board(state: np.ndarray, game: Othello = GAME) -> np.ndarray:
    """The board as drawn: 1 black, -1 white, 0 empty.  # [N, N]"""
    planes = game.encode(state[None])[0].astype(np.int8)
    mover = 1 if game.to_play(state[None])[0] == 0 else -1
    return mover * (planes[0] - planes[1])


def _legal(state: np.ndarray, game: Othello = GAME) -> set[str]:
    return {game.action_to_str(a) for a in np.flatnonzero(game.legal_mask(state[None])[0])}


# Counts.


def test_perft_from_the_start_matches_the_published_counts() -> None:
    assert perft(GAME, 9) == [4, 12, 56, 244, 1396, 8200, 55092, 390216, 3005288]


@pytest.mark.slow
def test_perft_10() -> None:
    # Published: 24,571,284. That table also counts a pass out of each of the 228 games already over
    # after 9 plies (all black wipeouts, 13-0); here a finished game has no moves.
    assert perft(GAME, 10)[-1] == 24_571_284 - 228


def test_perft_6x6_matches_the_reference() -> None:
    assert perft(OTHELLO6, 6) == [ref_perft(ref_start(6), 1, depth) for depth in range(1, 7)]


# Hand-checked positions.


def test_start_position() -> None:
    start = GAME.initial_state()
    board = _board(start)
    assert board[3, 3] == -1 and board[4, 4] == -1  # d4, e5 white
    assert board[4, 3] == 1 and board[3, 4] == 1  # d5, e4 black
    assert np.abs(board).sum() == 4
    assert GAME.to_play(start[None])[0] == 0  # black moves first
    assert _legal(start) == {"d3", "c4", "f5", "e6"}
    assert _legal(_state("f5")) == {"d6", "f6", "f4"}  # white's replies to the usual first move
    assert _legal(OTHELLO6.initial_state(), OTHELLO6) == {"c2", "b3", "e4", "d5"}


def test_flips_in_all_eight_directions() -> None:
    before = GAME.state_from_rows(
        [
            "........",
            ".X.X.X..",
            "..OOO...",
            ".XO.OOX.",
            "..OOO...",
            ".X.X.X..",
            "........",
            "........",
        ],
        to_move="X",
    )
    after = GAME.play(before[None], np.array([GAME.parse_action("d4")]))[0]
    expected = GAME.state_from_rows(
        [
            "........",
            ".X.X.X..",
            "..XXX...",
            ".XXXXXX.",  # two discs flipped towards the east
            "..XXX...",
            ".X.X.X..",
            "........",
            "........",
        ],
        to_move="O",
    )
    np.testing.assert_array_equal(after, expected)
    assert tuple(GAME.disc_counts(after[None])[0]) == (18, 0)  # 8 + 9 flipped + the new one
    assert GAME.terminal_value(after[None])[0] == -1.0  # white has no disc left: the game is over


def test_lines_ending_at_the_edge_or_an_empty_cell_flip_nothing() -> None:
    before = GAME.state_from_rows(
        [
            ".OOOOOOO",  # a1 east: white to the edge
            "OO......",  # a1 south: white up to an empty a3; a1 south-east: b2 then black c3
            "..X.....",
            "........",
            "........",
            "........",
            "........",
            ".......X",
        ],
        to_move="X",
    )
    assert _legal(before) == {"a1"}
    after = GAME.play(before[None], np.array([GAME.parse_action("a1")]))[0]
    board = _board(after)
    assert board[0, 0] == 1 and board[1, 1] == 1  # the placed disc and b2, the one closed line
    assert (board[0, 1:] == -1).all() and board[1, 0] == -1  # the lines to the edge and to a3 stay white


def test_forced_pass_then_a_wipeout_with_empty_squares() -> None:
    stuck = GAME.state_from_rows(["OOX....."] + ["........"] * 7, to_move="X")
    assert _legal(stuck) == {"pass"}
    np.testing.assert_array_equal(GAME.legal_mask(stuck[None])[0, :PASS], False)
    assert np.isnan(GAME.terminal_value(stuck[None])[0])
    assert "X to move (must pass)" in GAME.render(stuck)
    white = GAME.play(stuck[None], np.array([PASS]))[0]
    assert GAME.to_play(white[None])[0] == 1
    np.testing.assert_array_equal(_board(white), _board(stuck))  # a pass turns no disc
    assert _legal(white) == {"d1"}
    end = GAME.play(white[None], np.array([GAME.parse_action("d1")]))[0]
    assert tuple(GAME.disc_counts(end[None])[0]) == (0, 4)
    assert GAME.terminal_value(end[None])[0] == -1.0  # black is to move and has lost
    assert not GAME.legal_mask(end[None]).any()  # no pass either: the game is over
    assert GAME.render(end).splitlines()[-1] == "game over: X 0, O 4"


def test_game_ends_when_neither_can_move() -> None:
    blocked = ["XX......"] + ["........"] * 6 + [".......O"]
    for to_move, value in (("X", 1.0), ("O", -1.0)):
        state = GAME.state_from_rows(blocked, to_move=to_move)
        assert GAME.terminal_value(state[None])[0] == value  # black 2, white 1, 61 squares empty
        assert not GAME.legal_mask(state[None]).any()
    tied = GAME.state_from_rows(["X......."] + ["........"] * 6 + [".......O"], to_move="O")
    assert GAME.terminal_value(tied[None])[0] == 0.0


def test_shortest_game_is_a_nine_move_wipeout() -> None:
    state = _state("d3 c3 b3 d2 e1 d6 d7 e3 f4")
    assert tuple(GAME.disc_counts(state[None])[0]) == (13, 0)
    assert GAME.terminal_value(state[None])[0] == -1.0 and GAME.to_play(state[None])[0] == 1
    with pytest.raises(ValueError, match="move 10 .* is illegal"):
        _state("d3 c3 b3 d2 e1 d6 d7 e3 f4 pass")


def test_final_score_of_a_full_board() -> None:
    summary = check_random_playouts(GAME, n_games=20, seed=11)
    final = summary.states[~np.isnan(GAME.terminal_value(summary.states))]
    counts = GAME.disc_counts(final)
    assert (counts.sum(axis=1) == 64).any()  # most random games fill the board
    winner = np.sign(counts[:, 0] - counts[:, 1])
    value = GAME.terminal_value(final)
    np.testing.assert_array_equal(np.where(GAME.to_play(final) == 0, value, -value), winner)


# Against the reference, move by move.


@pytest.mark.parametrize("game", [GAME, OTHELLO6], ids=lambda g: g.name)
def test_matches_the_reference_on_random_games(game: Othello) -> None:
    n, rng, count = game.size, np.random.default_rng(5), 150
    boards = [ref_start(n) for _ in range(count)]
    movers = [1] * count
    states = np.repeat(game.initial_state()[None], count, axis=0)
    live, passes = np.arange(count), 0
    while len(live):
        mask, values, planes = game.legal_mask(states), game.terminal_value(states), game.encode(states)
        for row, g in enumerate(live):
            board, me = boards[g], movers[g]
            moves, replies = ref_moves(board, me), ref_moves(board, -me)
            expected = np.zeros(n * n + 1, bool)
            expected[list(moves)] = True
            expected[n * n] = not moves and bool(replies)
            np.testing.assert_array_equal(mask[row], expected)
            mine, theirs = sum(v == me for r in board for v in r), sum(v == -me for r in board for v in r)
            np.testing.assert_equal(values[row], np.sign(mine - theirs) if not moves and not replies else np.nan)
            grid = np.array(board)
            np.testing.assert_array_equal(planes[row, 0], grid == me)
            np.testing.assert_array_equal(planes[row, 1], grid == -me)
            np.testing.assert_array_equal(planes[row, 2].reshape(-1), expected[:-1])
        passes += int(mask[:, -1].sum())
        keep = np.isnan(values)
        states, live, mask = states[keep], live[keep], mask[keep]
        if not len(live):
            break
        actions = np.where(mask, rng.random(mask.shape), -1).argmax(axis=1)
        for g, action in zip(live, actions):
            if action < n * n:
                ref_play(boards[g], int(action), movers[g])
            movers[g] = -movers[g]
        states = game.play(states, actions)
    assert passes > 0


# The shipped rule checks.


@pytest.mark.parametrize("game", [GAME, OTHELLO6], ids=lambda g: g.name)
def test_random_playouts_pass_rule_checks(game: Othello) -> None:
    summary = check_random_playouts(game, n_games=200, seed=3)
    assert set(np.unique(summary.outcomes)) == {-1.0, 0.0, 1.0}
    assert summary.lengths.min() >= 9 and summary.lengths.max() <= 2 * game.cells
    check_encoding(game, summary.states)
    check_batch_matches_single(game, summary.states, seed=4)
    check_symmetries(game, summary.states[:3000], seed=4)


def test_symmetries_of_the_start() -> None:
    # The start is its own image under the identity, the half turn and the two diagonal mirrors
    # (symmetries 0, 4, 3 and 7), which also permute black's four first moves; the other four
    # symmetries swap the colours of the centre, giving positions that never occur.
    states = np.stack([GAME.initial_state(), *(_state(m) for m in ("d3", "c4", "f5", "e6"))])
    assert check_symmetries(GAME, states, seed=0) == 4 * len(states)
    planes = GAME.encode(states[:1])
    for k in range(8):
        image = GAME.symmetry(k, planes, np.zeros((1, 65), np.float32))[0]
        discs = planes[0, :2] if k in (0, 3, 4, 7) else planes[0, 1::-1]
        np.testing.assert_array_equal(image[0, :2], discs)
    planes, policy = GAME.encode(states[:1]), np.eye(65, dtype=np.float32)[[0, 64]]
    for k in range(8):
        _, image = GAME.symmetry(k, np.repeat(planes, 2, axis=0), policy)
        assert GAME.action_to_str(int(image[0].argmax())) in {"a1", "h1", "a8", "h8"}  # a corner stays a corner
        assert image[1, 64] == 1.0  # pass stays pass


# Notation, drawing, registration.


def test_notation() -> None:
    assert [GAME.action_to_str(a) for a in (0, 7, 8, 63, 64)] == ["a1", "h1", "a2", "h8", "pass"]
    assert GAME.parse_moves("f5 d6 C3") == GAME.parse_moves("f5d6c3") == [37, 43, 18]
    assert GAME.parse_moves("f5 PASS d6") == [37, 64, 43]
    assert GAME.parse_moves("") == []
    for bad in ("i1", "a9", "a0", "f", "5", "f5,d6", "passe"):
        with pytest.raises(ValueError):
            GAME.parse_moves(bad)
    with pytest.raises(ValueError, match="write a cell a1-f6"):
        OTHELLO6.parse_action("g1")


def test_render() -> None:
    lines = GAME.render(_state("f5")).splitlines()
    assert lines[0] == lines[9] == "   a b c d e f g h"
    assert lines[4] == " 4 . . . O X * . . 4"  # * marks white's moves f4, d6, f6
    assert lines[5] == " 5 . . . X X X . . 5"
    assert lines[6] == " 6 . . . * . * . . 6"
    assert lines[-1] == "O to move: X 4, O 1"


def test_registered_with_its_settings() -> None:
    assert get_game("othello") is GAME and get_game("othello6") is OTHELLO6
    assert (GAME.planes_shape, GAME.num_actions, GAME.num_symmetries) == ((3, 8, 8), 65, 8)
    assert (OTHELLO6.planes_shape, OTHELLO6.num_actions) == ((3, 6, 6), 37)
    settings = resolve(flags={"game": "othello"}, environ={})
    assert settings.dirichlet_alpha == GAME.default_settings["dirichlet_alpha"]
    with pytest.raises(ValueError, match="even board size"):
        Othello(7)
