"""Tic-tac-toe: the quick game for tests. Cells 1-9, row by row from the top left.

State row (int8, 10 values): cells 0-8 (0 empty, 1 first player X, -1 second player O),
then the number of moves played.
"""

from __future__ import annotations

import numpy as np

from azjobs.games import register
from azjobs.games.base import Game

# The eight lines of three, as cell indices.  # [8, 3]
LINES = np.array(
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]],
    dtype=np.intp,
)
PLY = 9  # index of the move counter in a state row


def _dihedral(k: int, grid: np.ndarray) -> np.ndarray:
    """Symmetry k of the 8 of the square on the last two axes: k // 2 quarter turns, then a mirror if odd."""
    grid = np.rot90(grid, k // 2, axes=(-2, -1))
    return grid[..., ::-1] if k % 2 else grid


class TicTacToe(Game):
    name = "tictactoe"
    num_actions = 9
    state_size = 10
    planes_shape = (2, 3, 3)
    num_symmetries = 8
    plane_names = ("the marks of the player to move", "the opponent's marks")
    encoding_doc = (
        "planes[p, r, c] is 1 where plane p has a mark in row r (0 = the top row) and column c (0 = the "
        "leftmost); action a is the cell 3r + c, written a + 1 (1-9 row by row from the top left)"
    )
    default_settings = {
        "net_blocks": 2,
        "net_channels": 32,
        "num_simulations": 50,
        "dirichlet_alpha": 1.0,
        "temperature_moves": 4,
        "games_per_job": 64,
        "games_in_flight": 64,
        "inference_batch_size": 32,
        "replay_buffer_size": 20_000,
        "min_replay_positions": 1_000,
        "batch_size": 128,
        "publish_every_steps": 50,
        "checkpoint_every_steps": 200,
    }

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, dtype=np.int8)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        return (states[:, PLY] % 2).astype(np.int8)

    def _winner_exists(self, states: np.ndarray) -> np.ndarray:
        sums = states[:, :9].astype(np.int16)[:, LINES].sum(axis=2)  # [K, 8]
        return (np.abs(sums) == 3).any(axis=1)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        return (states[:, :9] == 0) & ~self._winner_exists(states)[:, None]

    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = states.copy()
        rows = np.arange(len(states))
        out[rows, actions] = np.where(states[:, PLY] % 2 == 0, 1, -1).astype(np.int8)
        out[:, PLY] += 1
        return out

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        value = np.full(len(states), np.nan, dtype=np.float32)
        value[states[:, PLY] == 9] = 0.0
        value[self._winner_exists(states)] = -1.0  # the player who just moved has won
        return value

    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((len(states), *self.planes_shape), dtype=np.uint8)
        me = np.where(states[:, PLY] % 2 == 0, 1, -1).astype(np.int8)[:, None]
        cells = states[:, :9]
        out[:, 0] = (cells == me).reshape(-1, 3, 3)
        out[:, 1] = (cells == -me).reshape(-1, 3, 3)
        return out

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grid_policy = policy.reshape(-1, 3, 3)
        return (
            np.ascontiguousarray(_dihedral(k, planes)),
            np.ascontiguousarray(_dihedral(k, grid_policy)).reshape(-1, 9),
        )

    def action_to_str(self, action: int) -> str:
        return str(int(action) + 1)

    def parse_action(self, text: str) -> int:
        text = text.strip()
        if len(text) != 1 or text not in "123456789":
            raise ValueError(f"{text!r} is not a cell; write 1-9, row by row from the top left")
        return int(text) - 1

    def parse_moves(self, line: str) -> list[int]:
        tokens = line.split()
        if len(tokens) == 1 and len(tokens[0]) > 1 and tokens[0].isdigit():
            tokens = list(tokens[0])  # a compact digit string such as 5193
        return [self.parse_action(token) for token in tokens]

    def render(self, state: np.ndarray) -> str:
        marks = {1: "X", -1: "O", 0: "."}
        rows = [" ".join(marks[int(v)] for v in state[r * 3 : r * 3 + 3]) for r in range(3)]
        return "\n".join(rows)


TICTACTOE = register(TicTacToe())
