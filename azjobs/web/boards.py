"""Boards for the page: any game's position as a grid of stones, and a shard's games as move lists.

A board is read from the game's own planes (`encode`: own stones first, then the opponent's, seen from
the player to move), so every game that keeps that convention draws without code of its own. A shard
stores positions, not moves: a game's moves are found again by playing, from the start, the one legal
move that leads to the next stored position; the last move (after the last stored position) is the one
that ends the game with the stored result, the search's favourite among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from azjobs.game_records import GameRecords
from azjobs.games.base import Game

EMPTY, FIRST, SECOND = 0, 1, 2  # a cell of a board: empty, the first player's stone, the second player's


def board_of_planes(planes: np.ndarray, to_play: int) -> list[list[int]]:
    """The grid of one position's planes `[C, H, W]`, whose player to move is `to_play` (0: first)."""
    own, other = planes[0].astype(bool), planes[1].astype(bool)
    first, second = (own, other) if to_play == 0 else (other, own)
    grid = np.where(first, FIRST, np.where(second, SECOND, EMPTY))
    return grid.astype(int).tolist()


def board(game: Game, state: np.ndarray) -> list[list[int]]:
    """The grid of one state `[S]`, cell values EMPTY, FIRST, SECOND.  # [H][W]"""
    return board_of_planes(game.encode(state[None])[0], int(game.to_play(state[None])[0]))


def legal_moves(game: Game, state: np.ndarray) -> list[dict[str, Any]]:
    """Each legal move of `state`: its action, notation and the cell it puts a stone on (None: a pass)."""
    if game.is_terminal(state):
        return []
    before = np.array(board(game, state))
    actions = np.flatnonzero(game.legal_mask(state[None])[0])
    after = game.play(np.repeat(state[None], len(actions), axis=0), actions)
    moves = []
    for action, next_state in zip(actions, after):
        placed = np.argwhere((before == EMPTY) & (np.array(board(game, next_state)) != EMPTY))
        cell = [int(placed[0][0]), int(placed[0][1])] if len(placed) == 1 else None
        moves.append({"action": int(action), "label": game.action_to_str(int(action)), "cell": cell})
    return moves


def outcome(game: Game, state: np.ndarray) -> int | None:
    """+1 the first player won, 0 a draw, -1 the second won; None while the game goes on."""
    value = float(game.terminal_value(state[None])[0])
    if np.isnan(value):
        return None
    return int(round(value)) * (1 if int(game.to_play(state[None])[0]) == 0 else -1)


@dataclass(frozen=True)
class Replay:
    """One game move by move: `boards[i]` is the board before move i, the last one after the last move."""

    moves: list[int]
    boards: list[list[list[int]]]
    stored_final: list[list[int]]  # the shard's own last position, as a board
    result: int  # the stored result, +1 the first player won

    def to_dict(self, game: Game) -> dict[str, Any]:
        return {
            "game": game.name,
            "moves": [{"action": a, "label": game.action_to_str(a)} for a in self.moves],
            "boards": self.boards,
            "stored_final": self.stored_final,
            "result": self.result,
        }


def game_slices(records: GameRecords) -> list[slice]:
    """The rows of each game of `records`, in order."""
    ends = np.cumsum(records.game_lengths)
    return [slice(int(end - length), int(end)) for end, length in zip(ends, records.game_lengths)]


def replay_stored(game: Game, records: GameRecords, index: int) -> Replay:
    """Game `index` of a shard's records, its moves found again from its positions."""
    rows = game_slices(records)[index]
    planes, policy = records.planes[rows], records.policy[rows]  # [L, C, H, W], [L, A]
    result = int(records.results[index])
    state = game.initial_state()
    moves: list[int] = []
    boards = [board(game, state)]
    for i in range(len(planes)):
        actions = np.flatnonzero(game.legal_mask(state[None])[0])
        after = game.play(np.repeat(state[None], len(actions), axis=0), actions)
        if i + 1 < len(planes):
            fits = [k for k in range(len(actions)) if np.array_equal(game.encode(after[k : k + 1])[0], planes[i + 1])]
        else:  # the last move: one that ends the game with the stored result (none: the game was resigned)
            fits = [k for k in range(len(actions)) if outcome(game, after[k]) == result]
        if not fits:
            break
        k = max(fits, key=lambda k: policy[i, actions[k]])
        moves.append(int(actions[k]))
        state = after[k]
        boards.append(board(game, state))
    last = len(planes) - 1
    stored_final = board_of_planes(planes[last], _to_play_at(game, moves, last))
    return Replay(moves, boards, stored_final, result)


def _to_play_at(game: Game, moves: list[int], ply: int) -> int:
    """Whose turn it was before move `ply` of a game whose moves (found so far) are `moves`."""
    state = game.state_after(moves[:ply]) if ply <= len(moves) else game.state_after(moves)
    return int(game.to_play(state[None])[0])
