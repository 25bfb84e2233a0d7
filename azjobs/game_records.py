"""Finished self-play games as arrays: what a job produces and a replay shard stores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_ALL_ONES = np.ones(0, np.float32)  # GameRecords' default policy_weight, replaced by ones of its length


@dataclass(frozen=True)
class GameRecords:
    """The positions of some finished games, one row per position.

    `value` is the game's final result seen from the player to move at that position
    (+1 win, 0 draw, -1 loss): the value head's training target. `policy_weight` is 1 where the
    policy is a training target (a full search), 0 where it is not (a cheap search of playout cap
    randomization): only the value is learned there. It defaults to all ones.
    """

    planes: np.ndarray  # [N, C, H, W] uint8
    policy: np.ndarray  # [N, A] float32, the search's policy target: visit shares or Gumbel's pi' (rows sum to 1)
    value: np.ndarray  # [N] float32
    weights_version: np.ndarray  # [N] int32, the weights version whose search chose the move
    results: np.ndarray  # [G] int8, per game: +1 first player won, 0 draw, -1 second player won
    game_lengths: np.ndarray  # [G] int32, moves per game
    policy_weight: np.ndarray = field(default_factory=lambda: _ALL_ONES)  # [N] float32, 0 or 1

    def __post_init__(self) -> None:
        if self.policy_weight is _ALL_ONES:
            object.__setattr__(self, "policy_weight", np.ones(len(self.value), np.float32))

    @property
    def positions(self) -> int:
        return len(self.value)

    @property
    def games(self) -> int:
        return len(self.results)

    @staticmethod
    def concat(parts: list[GameRecords]) -> GameRecords:
        return GameRecords(*(np.concatenate([getattr(p, f) for p in parts]) for f in GameRecords.__dataclass_fields__))
