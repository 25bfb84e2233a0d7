"""Finished self-play games as arrays: what a job produces and a replay shard stores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_ALL_ONES = np.ones(0, np.float32)  # GameRecords' default policy_weight, replaced by ones of its length
_THE_RESULT = np.zeros(0, np.float32)  # GameRecords' default root_value, replaced by a copy of `value`
_NONE = np.zeros(0, np.float32)  # GameRecords' default policy_surprise, replaced by zeros of its length


@dataclass(frozen=True)
class GameRecords:
    """The positions of some finished games, one row per position.

    `value` is the game's final result seen from the player to move at that position
    (+1 win, 0 draw, -1 loss): the value head's training target. `policy_weight` is 1 where the
    policy is a training target (a full search), 0 where it is not (a cheap search of playout cap
    randomization): only the value is learned there. It defaults to all ones.

    `root_value` is the search's mean value at the root for the player to move (the Q of the value
    targets mixed with the result; it defaults to `value`, so a record without it is z alone), and
    `policy_surprise` the KL divergence of the policy target from the network's prior at the root
    (0 where the search was a cheap one; it defaults to zeros).
    """

    planes: np.ndarray  # [N, C, H, W] uint8
    policy: np.ndarray  # [N, A] float32, the search's policy target: visit shares or Gumbel's pi' (rows sum to 1)
    value: np.ndarray  # [N] float32
    weights_version: np.ndarray  # [N] int32, the weights version whose search chose the move
    results: np.ndarray  # [G] int8, per game: +1 first player won, 0 draw, -1 second player won
    game_lengths: np.ndarray  # [G] int32, moves per game
    policy_weight: np.ndarray = field(default_factory=lambda: _ALL_ONES)  # [N] float32, 0 or 1
    root_value: np.ndarray = field(default_factory=lambda: _THE_RESULT)  # [N] float32 in [-1, 1]
    policy_surprise: np.ndarray = field(default_factory=lambda: _NONE)  # [N] float32 >= 0, nats

    def __post_init__(self) -> None:
        if self.policy_weight is _ALL_ONES:
            object.__setattr__(self, "policy_weight", np.ones(len(self.value), np.float32))
        if self.root_value is _THE_RESULT:
            object.__setattr__(self, "root_value", np.array(self.value, np.float32))
        if self.policy_surprise is _NONE:
            object.__setattr__(self, "policy_surprise", np.zeros(len(self.value), np.float32))

    @property
    def positions(self) -> int:
        return len(self.value)

    @property
    def games(self) -> int:
        return len(self.results)

    @staticmethod
    def concat(parts: list[GameRecords]) -> GameRecords:
        return GameRecords(*(np.concatenate([getattr(p, f) for p in parts]) for f in GameRecords.__dataclass_fields__))
