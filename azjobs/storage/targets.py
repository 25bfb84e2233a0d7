"""What the trainer learns from the replay window's positions: the value target mixed from the search's
root value and the game's result, identical positions merged, and sampling weighted by policy surprise.

`WindowTargets` is what one window's rows give; the replay buffer makes one when new data lands or the
window moves (every few seconds at most), so a training batch only draws and gathers from it.
docs/training.md explains each target and what it costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from azjobs.settings import Settings

_HASH_START = np.uint64(0xCBF29CE484222325)  # FNV-1a's offset basis
_HASH_PRIME = np.uint64(0x100000001B3)  # FNV-1a's prime, applied to 8 bytes at a time
_HASH_SHIFT = np.uint64(29)


@dataclass(frozen=True)
class TargetSettings:
    """The settings of the training targets (all 0: AlphaZero's targets, uniform sampling)."""

    q_weight: float = 0.0  # value target (1 - q_weight) z + q_weight q
    merge_weight: float = 0.0  # a duplicated position's target: merge_weight x the mean + the rest its own
    surprise_weight: float = 0.0  # share of the sampling weight in proportion to the policy surprise

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetSettings:
        return cls(settings.value_target_q_weight, settings.merge_duplicates, settings.policy_surprise_weight)

    @property
    def plain(self) -> bool:
        """Nothing to do: the window's rows are sampled uniformly with their stored targets."""
        return self.q_weight == 0 and self.merge_weight == 0 and self.surprise_weight == 0


def mixed_values(result: np.ndarray, root_value: np.ndarray, q_weight: float) -> np.ndarray:
    """The value targets (1 - w) z + w q.  # [N], [N] -> [N] float32"""
    if q_weight == 0:
        return np.array(result, np.float32)
    return ((1.0 - q_weight) * result + q_weight * root_value).astype(np.float32)


def position_hashes(planes: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each position's encoded planes (equal planes, equal hash).  # [N, C, H, W] -> [N] uint64

    FNV-1a over 8-byte words with a shift mixed in, one column of words at a time over all rows.
    """
    flat = planes.reshape(len(planes), -1)
    pad = -flat.shape[1] % 8
    if pad:
        flat = np.pad(flat, ((0, 0), (0, pad)))
    words = np.ascontiguousarray(flat).view(np.uint64)  # [N, L / 8]
    hashes = np.full(len(planes), _HASH_START, np.uint64)
    for column in words.T:
        hashes ^= column
        hashes *= _HASH_PRIME
        hashes ^= hashes >> _HASH_SHIFT
    return hashes


@dataclass(frozen=True)
class Duplicates:
    """The groups of identical positions among a window's rows (D groups of two rows or more)."""

    group: np.ndarray  # [W] intp, each window row's group; -1 for a position the window holds once
    value: np.ndarray  # [D] float32, the mean value target of each group
    policy: np.ndarray  # [D, A] float32, the mean policy over each group's rows with a policy target
    has_policy: np.ndarray  # [D] bool, some row of the group has a policy target


def find_duplicates(
    hashes: np.ndarray, value: np.ndarray, policy: np.ndarray, policy_weight: np.ndarray, rows: np.ndarray
) -> Duplicates:
    """Group the window's rows by position and average each group's targets.

    `hashes  # [W]` and `value  # [W]` are the window's; `policy  # [R, A]` and `policy_weight  # [R]` the
    ring's, `rows  # [W]` the window's rows in it (only the duplicated rows' policies are read).
    """
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    first = np.ones(len(order), bool)  # [W] the sorted row starts a group
    first[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
    group_of_sorted = np.cumsum(first) - 1  # [W] group of each sorted row
    counts = np.diff(np.append(np.flatnonzero(first), len(order)))  # [G] rows per group
    duplicated = counts > 1
    numbered = np.where(duplicated, np.cumsum(duplicated) - 1, -1)  # [G] index among duplicated groups, or -1
    group = np.empty(len(order), np.intp)
    group[order] = numbered[group_of_sorted]
    inside = duplicated[group_of_sorted]  # [W] sorted rows in a duplicated group
    members, member_group = order[inside], numbered[group_of_sorted[inside]]  # grouped, groups rising
    d, actions = int(duplicated.sum()), policy.shape[1]
    if d == 0:
        return Duplicates(group, np.zeros(0, np.float32), np.zeros((0, actions), np.float32), np.zeros(0, bool))
    starts = np.flatnonzero(np.r_[True, member_group[1:] != member_group[:-1]])
    mean_value = np.add.reduceat(value[members].astype(np.float64), starts) / counts[duplicated]
    weight = policy_weight[rows[members]].astype(np.float64)  # [M]
    weight_sum = np.add.reduceat(weight, starts)  # [D]
    policy_sum = np.add.reduceat(policy[rows[members]] * weight[:, None], starts, axis=0)  # [D, A]
    mean_policy = policy_sum / np.maximum(weight_sum, 1e-12)[:, None]
    return Duplicates(group, mean_value.astype(np.float32), mean_policy.astype(np.float32), weight_sum > 0)


def merge(
    duplicates: Duplicates,
    picked: np.ndarray,
    policy: np.ndarray,
    value: np.ndarray,
    policy_weight: np.ndarray,
    weight: float,
) -> None:
    """Merge the targets of the window rows `picked  # [B]` in place: w x their group's mean + (1 - w) x
    their own (`policy  # [B, A]`, `value  # [B]`). A row without a policy target (`policy_weight` 0) keeps
    its policy: only its value is merged."""
    group = duplicates.group[picked]
    merged = group >= 0
    if not merged.any():
        return
    value[merged] = weight * duplicates.value[group[merged]] + (1 - weight) * value[merged]
    with_policy = merged & (policy_weight > 0) & duplicates.has_policy[np.maximum(group, 0)]
    policy[with_policy] = weight * duplicates.policy[group[with_policy]] + (1 - weight) * policy[with_policy]


def surprise_cdf(surprise: np.ndarray, share: float) -> np.ndarray:
    """The cumulative sampling weights of the window's rows: (1 - share) spread uniformly, `share` in
    proportion to each row's policy surprise; uniform when no row has any.  # [W] -> [W] float64"""
    total = float(surprise.sum(dtype=np.float64))
    if total <= 0:
        return np.arange(1, len(surprise) + 1, dtype=np.float64)
    weights = (1 - share) / len(surprise) + share * surprise.astype(np.float64) / total
    return np.cumsum(weights)


def draw(cdf: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` window rows drawn with the weights whose running sum is `cdf`.  # [count] intp"""
    picked = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")
    return np.minimum(picked, len(cdf) - 1)


@dataclass(frozen=True)
class WindowTargets:
    """What a window's W rows give: their ring rows, value targets, duplicates and sampling weights."""

    rows: np.ndarray  # [W] ring rows, the newest first
    value: np.ndarray  # [W] float32, the mixed value targets (before any merge)
    duplicates: Duplicates | None  # None unless merging
    cdf: np.ndarray | None  # [W] float64 running sum of the sampling weights; None: uniform

    def draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` window rows (indices into `rows`).  # [count] intp"""
        if self.cdf is None:
            return rng.integers(0, len(self.rows), size=count)
        return draw(self.cdf, count, rng)
