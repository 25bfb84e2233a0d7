"""Static evaluations for the alpha-beta baseline: a generic one and per-game ones, over planes.

A heuristic maps planes `[K, C, H, W]` (drawn from the side to move, own stones in channel 0
and the opponent's in channel 1, as `Game.encode` promises) to a value in (-1, 1) for the
player to move. A game gets its own with `register_heuristic`; the rest use `material`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from azjobs.games.base import Game

Heuristic = Callable[[np.ndarray], np.ndarray]  # planes [K, C, H, W] uint8 -> values [K] float32 in (-1, 1)


def material(planes: np.ndarray) -> np.ndarray:
    """Own stones minus the opponent's, over all stones: the generic evaluation (Othello's disc count)."""
    own = planes[:, 0].reshape(len(planes), -1).sum(axis=1, dtype=np.float32)
    opp = planes[:, 1].reshape(len(planes), -1).sum(axis=1, dtype=np.float32)
    return (own - opp) / (own + opp + 1)


def line_windows(height: int, width: int, length: int) -> np.ndarray:
    """Every straight line of `length` cells on a height x width board, as flat cell indices.  # [W, length]"""
    lines = []
    for r in range(height):
        for c in range(width):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + i * dr, c + i * dc) for i in range(length)]
                if all(0 <= rr < height and 0 <= cc < width for rr, cc in cells):
                    lines.append([rr * width + cc for rr, cc in cells])
    return np.array(lines, dtype=np.intp)


class OpenLines:
    """Lines still open to one side only, weighted by the stones already in them (k-in-a-row games).

    A line with k own stones and none of the opponent's counts `weights[k]`, the opponent's
    count against; the sum is squashed by tanh(sum / scale).
    """

    def __init__(self, height: int, width: int, length: int, weights: tuple[float, ...], scale: float) -> None:
        if len(weights) != length:
            raise ValueError(f"need one weight per stone count 0..{length - 1}, got {len(weights)}")
        self.windows = line_windows(height, width, length)  # [W, L]
        self.weights = np.array([*weights, 0.0], dtype=np.float32)  # a full line is a finished game: 0
        self.scale = scale

    def __call__(self, planes: np.ndarray) -> np.ndarray:
        k = len(planes)
        own = planes[:, 0].reshape(k, -1)[:, self.windows].sum(axis=2)  # [K, W] own stones per line
        opp = planes[:, 1].reshape(k, -1)[:, self.windows].sum(axis=2)
        score = (self.weights[own] * (opp == 0)).sum(axis=1) - (self.weights[opp] * (own == 0)).sum(axis=1)
        return np.tanh(score / self.scale).astype(np.float32)


_HEURISTICS: dict[str, Heuristic] = {
    # An empty line is worth nothing; one with three of four stones is a threat.
    "connect4": OpenLines(6, 7, 4, weights=(0.0, 1.0, 4.0, 16.0), scale=40.0),
    "tictactoe": OpenLines(3, 3, 3, weights=(0.0, 1.0, 5.0), scale=8.0),
}


def register_heuristic(game_name: str, heuristic: Heuristic) -> None:
    """Give a game its own static evaluation for the alpha-beta player."""
    _HEURISTICS[game_name] = heuristic


def heuristic_for(game: Game) -> Heuristic:
    return _HEURISTICS.get(game.name, material)
