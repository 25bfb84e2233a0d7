"""Baselines a run has outgrown: once the newest versions beat a baseline nearly always, more games
against it tell nothing, so later versions no longer play it (its matches stay in the records).

A baseline is retired when the newest scheduled matches of the run's versions against it, pooled
until they hold RETIRE_GAMES games, give a lower confidence bound (Wilson, 95%) of the versions'
score above `eval_retire_score`. The rule reads only the records, so it needs no state of its own:
once retired, a baseline gets no new matches, and the same records keep it retired.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from azjobs.eval.match import MatchRecord

RETIRE_GAMES = 80  # games pooled: 80 straight wins give a lower bound of 0.954
Z = 1.96  # the two-sided 95% normal quantile


def lower_bound(points: float, games: int, z: float = Z) -> float:
    """Wilson's lower confidence bound of a score (draws counting half) over `games` games."""
    if games <= 0:
        return 0.0
    p, zz = points / games, z * z
    centre = p + zz / (2 * games)
    spread = z * math.sqrt(max(0.0, p * (1 - p)) / games + zz / (4 * games * games))
    return (centre - spread) / (1 + zz / games)


@dataclass(frozen=True)
class Pooled:
    """The newest versions' scheduled games against one baseline."""

    baseline: str
    games: int
    points: float  # the versions' points: a win 1, a draw 1/2
    oldest: int  # the versions pooled, oldest and newest
    newest: int

    @property
    def lower(self) -> float:
        return lower_bound(self.points, self.games)

    def why(self) -> str:
        return (
            f"versions {self.oldest}-{self.newest} scored {self.points:g} of {self.games} games against it "
            f"(lower bound {self.lower:.3f})"
        )


def own_version(player: str) -> int | None:
    """The version of one of the run's own network players (`net:N`), else None."""
    kind, _, number = player.partition(":")
    return int(number) if kind == "net" and number.isdigit() else None


def pooled(matches: Iterable[MatchRecord], baseline: str, games: int = RETIRE_GAMES) -> Pooled | None:
    """The newest scheduled matches of the run's versions against `baseline`, newest version first, until
    they hold at least `games` games; None while there are fewer."""
    played = [(v, m) for m in matches if m.purpose == "schedule" and m.b == baseline and (v := own_version(m.a))]
    total, points, oldest = 0, 0.0, 0
    newest = max((v for v, _ in played), default=0)
    for version, match in sorted(played, key=lambda item: (-item[0], -item[1].time)):
        total += match.games
        points += match.a_wins + 0.5 * match.draws
        oldest = version
        if total >= games:
            return Pooled(baseline, total, points, oldest, newest)
    return None


def retired(
    matches: Sequence[MatchRecord], baselines: Sequence[str], threshold: float, *, keep_one: bool
) -> dict[str, str]:
    """The baselines to play no more, each with why. With `keep_one` (the versions play no one else), the
    hardest of them (the lowest lower bound) stays, so that every version is still rated against something."""
    beaten = {b: p for b in baselines if (p := pooled(matches, b)) is not None and p.lower > threshold}
    if keep_one and beaten and len(beaten) == len(set(baselines)):
        beaten.pop(min(beaten, key=lambda b: beaten[b].lower))
    return {b: p.why() for b, p in beaten.items()}
