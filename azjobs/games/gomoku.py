"""Gomoku, free style (five or more in a row wins), on 9x9 (`gomoku`) and 15x15 (`gomoku15`).

Notation: columns a, b, ... from the left, rows numbered from 1 at the bottom (as in renju and Go),
so a1 is the bottom left corner and e5 the centre of the 9x9 board; black moves first. A full board
without five in a row is a draw.

State row (int8, size * size + 2 values): the cells row by row from the top row as drawn (0 empty,
1 black, -1 white), the colour to move (0 black, 1 white), and 1 if the last move made five or more
in a row (set by `play`, which looks only at the lines through the new stone).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from azjobs.games import register
from azjobs.games.base import Game
from azjobs.games.boards import NUM_DIHEDRAL, cell_names, dihedral_planes_policy, draw_board, split_moves

FIVE = 5
MARKS = ("X", "O")  # black, white

# Per size: the run's settings where the global defaults don't fit (docs/your-own-game.md says how
# to choose them). The 9x9 ones are sized for a first run on a CPU (in 10 minutes on about one core
# the agent played 1,536 games and then won 50 of 50 against a random player); 15x15 wants a GPU.
DEFAULTS: dict[int, dict[str, Any]] = {
    9: {
        "net_blocks": 3,
        "net_channels": 48,
        "num_simulations": 50,
        "dirichlet_alpha": 0.15,  # ~10 / the 60-70 legal moves of an average self-play position
        "temperature_moves": 8,  # of some 35 moves a game
        "min_replay_positions": 2_000,
        # Small jobs (as Othello's): 128 games give about 4,500 positions a shard.
        "games_per_job": 128,
        "games_in_flight": 64,
        "inference_batch_size": 32,  # one group's request
        "publish_every_steps": 50,
        # alpha-beta to depth 4 over 60-80 moves a ply takes the only worker of a CPU run for minutes
        "eval_opponents": "previous,random,oneply,alphabeta:2",
    },
    15: {
        "net_blocks": 5,
        "net_channels": 64,
        "num_simulations": 100,
        "dirichlet_alpha": 0.05,  # ~10 / 200 legal moves
        "temperature_moves": 10,
        "replay_buffer_size": 100_000,  # a position is 1.4 kB here (planes and 225 policy entries)
        "publish_every_steps": 50,
        "eval_opponents": "previous,random,oneply,alphabeta:2",
    },
}


def _window_table(size: int, padding: int) -> np.ndarray:
    """Every run of five cells in a line through each cell, as cell indices, padded with `padding`
    (the index of the won flag: 0 in any state one may play from, so padding never matches a stone).
    # [cells, 4 * 5, 5]"""
    table = np.full((size * size, 4 * FIVE, FIVE), padding, dtype=np.intp)
    for row in range(size):
        for col in range(size):
            windows = []
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                for start in range(-FIVE + 1, 1):
                    cells = [(row + (start + i) * dr, col + (start + i) * dc) for i in range(FIVE)]
                    if all(0 <= r < size and 0 <= c < size for r, c in cells):
                        windows.append([r * size + c for r, c in cells])
            table[row * size + col, : len(windows)] = windows
    return table


class Gomoku(Game):
    """Free-style Gomoku on a `size` x `size` board (5 to 19)."""

    num_symmetries = NUM_DIHEDRAL
    plane_names = ("the stones of the player to move", "the opponent's stones")
    encoding_doc = (
        "planes[p, r, c] is 1 where plane p has a stone in row r (0 = the top row as drawn) and column c "
        "(0 = the leftmost); action a is the cell r * size + c, written column letter then row number counted "
        "from the bottom (a1 the bottom left)"
    )

    def __init__(self, size: int = 9) -> None:
        if not FIVE <= size <= 19:
            raise ValueError(f"Gomoku needs a board size from 5 to 19, not {size}")
        self.size = size
        self.cells = size * size
        self.color = self.cells  # index of the colour to move
        self.won = self.cells + 1  # index of the flag: the last move made five in a row
        self.name = "gomoku" if size == 9 else f"gomoku{size}"
        self.num_actions = self.cells
        self.state_size = self.cells + 2
        self.planes_shape = (2, size, size)  # the mover's stones, the opponent's
        self.default_settings = DEFAULTS.get(size, DEFAULTS[15 if size > 9 else 9])
        self._windows = _window_table(size, padding=self.won)
        self._names = cell_names(size, first_row="bottom")
        self._actions = {name: action for action, name in enumerate(self._names)}

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, dtype=np.int8)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        return states[:, self.color].astype(np.int8)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        # A full board has no empty cell, so a draw needs no test of its own.
        return (states[:, : self.cells] == 0) & (states[:, self.won] == 0)[:, None]

    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """A stone of the player to move on each cell `actions` (legal ones only).  # [K, S], [K] -> [K, S]"""
        out = states.copy()
        rows = np.arange(len(states))
        cells = np.asarray(actions, dtype=np.intp)
        stones = np.where(states[:, self.color] == 0, 1, -1).astype(np.int8)  # [K]
        out[rows, cells] = stones
        out[:, self.color] = 1 - states[:, self.color]
        lines = out[rows[:, None, None], self._windows[cells]]  # [K, 20, 5] the runs of five through the stone
        out[:, self.won] = (lines == stones[:, None, None]).all(axis=2).any(axis=1)
        return out

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        value = np.full(len(states), np.nan, dtype=np.float32)
        value[(states[:, : self.cells] != 0).all(axis=1)] = 0.0
        value[states[:, self.won] == 1] = -1.0  # the player who just moved has won
        return value

    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((len(states), *self.planes_shape), dtype=np.uint8)
        me = np.where(states[:, self.color] == 0, 1, -1).astype(np.int8)[:, None]  # [K, 1]
        cells = states[:, : self.cells]
        out[:, 0] = (cells == me).reshape(-1, self.size, self.size)
        out[:, 1] = (cells == -me).reshape(-1, self.size, self.size)
        return out

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return dihedral_planes_policy(k, planes, policy, self.size)

    def action_to_str(self, action: int) -> str:
        return self._names[int(action)]

    def parse_action(self, text: str) -> int:
        found = self._actions.get(text.strip().lower())
        if found is None:
            raise ValueError(
                f"{text!r} is not a cell; write a1-{self._names[self.size - 1]} (a1 bottom left, rows numbered upwards)"
            )
        return found

    def parse_moves(self, line: str) -> list[int]:
        """Cells separated by spaces ("e5 f6") or run together ("e5f6")."""
        return [self.parse_action(word) for word in split_moves(line)]

    def render(self, state: np.ndarray) -> str:
        """The board with X for black and O for white."""
        marks = [{1: MARKS[0], -1: MARKS[1], 0: "."}[int(v)] for v in state[: self.cells]]
        mover = int(state[self.color])
        if state[self.won]:
            footer = f"game over: {MARKS[1 - mover]} has five in a row"
        elif (state[: self.cells] != 0).all():
            footer = "game over: a draw"
        else:
            footer = f"{MARKS[mover]} to move"
        return "\n".join([*draw_board(marks, self._names, self.size), footer])


GOMOKU = register(Gomoku(9))
GOMOKU15 = register(Gomoku(15))
