"""A tiny test game where the same player may move twice in a row, with its exact solution.

A pile of stones; the player to move takes 1, 2 or 3; whoever takes the last stone wins.
Taking 3 earns a bonus move: the same player moves again. Players that assume the turn
alternates misjudge it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from azjobs.games.base import Game

MAX_PILE = 12


class BonusNim(Game):
    name = "bonusnim"
    num_actions = 3  # take 1, 2 or 3
    state_size = 3  # pile, player to move, 1 if the last move took the last stone
    planes_shape = (2, 1, MAX_PILE)
    num_symmetries = 1

    def initial_state(self) -> np.ndarray:
        return np.array([MAX_PILE, 0, 0], np.int8)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        return states[:, 1].astype(np.int8)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        return (np.arange(1, 4)[None, :] <= states[:, :1]) & (states[:, 2:3] == 0)

    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = states.copy()
        take = np.asarray(actions) + 1
        out[:, 0] -= take
        finished = out[:, 0] == 0
        out[:, 2] = finished
        # The turn passes unless 3 were taken; at the end the loser is "to move".
        keep = (take == 3) & ~finished
        out[:, 1] = np.where(keep, states[:, 1], 1 - states[:, 1])
        return out

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        return np.where(states[:, 2] == 1, -1.0, np.nan).astype(np.float32)

    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((len(states), *self.planes_shape), np.uint8) if out is None else out
        out[:, 0, 0] = np.arange(MAX_PILE)[None, :] < states[:, :1]
        return out

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return planes, policy

    def action_to_str(self, action: int) -> str:
        return str(int(action) + 1)

    def parse_action(self, text: str) -> int:
        if text not in ("1", "2", "3"):
            raise ValueError(f"{text!r}: take 1, 2 or 3")
        return int(text) - 1

    def render(self, state: np.ndarray) -> str:
        return f"pile {state[0]}, player {state[1]} to move"


BONUSNIM = BonusNim()


@lru_cache(maxsize=None)
def wins(pile: int) -> bool:
    """Whether the player to move wins with perfect play (the same for either player)."""
    return any(move_wins(pile, take) for take in (1, 2, 3) if take <= pile)


def move_wins(pile: int, take: int) -> bool:
    """Whether taking `take` from `pile` wins for the mover."""
    left = pile - take
    if left == 0:
        return True
    return wins(left) if take == 3 else not wins(left)
