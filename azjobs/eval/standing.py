"""Where each weights version of a run stands, from its evaluation records on the storage root: its
rating and its accuracy on the labelled positions; and which version is the best (`net:best`).

The best is the most accurate version where positions were scored, else the best-rated one: with
ratings flat late in a run (every version wins and loses against its neighbours alike) the share of
optimal moves still tells versions apart. Reads only `<run_dir>/evals/`, so it works without Redis.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azjobs.errors import AzjobsError
from azjobs.eval import ratings
from azjobs.eval.records import AccuracyRecord, MatchRecord, read_files, stored_ratings


@dataclass(frozen=True)
class Standing:
    """What the run's records say of one weights version."""

    version: int
    rating: ratings.Rating | None = None
    accuracy: list[AccuracyRecord] = field(default_factory=list)  # one per number of simulations scored

    def to_dict(self) -> dict[str, Any]:
        return {
            "rating": None if self.rating is None else {**self.rating.to_dict(), "anchor": f"{ratings.ANCHOR} = 0"},
            "accuracy": [
                {
                    "sims": a.sims,
                    "positions": a.positions,
                    "weak_accuracy": a.weak_accuracy,
                    "strong_accuracy": a.strong_accuracy,
                    "random_weak_accuracy": a.random_weak_accuracy,
                }
                for a in sorted(self.accuracy, key=lambda a: a.sims)
            ],
        }


def _own_version(player: str) -> int | None:
    """The version of one of the run's own network players (`net:N`), else None."""
    kind, _, number = player.partition(":")
    return int(number) if kind == "net" and number.isdigit() else None


def standings(run_dir: Path) -> dict[int, Standing]:
    """Every version the run's records rate or score. Ratings: those of the trainer's last fit
    (`evals/ratings.json`), refitted over the match records when there are any."""
    matches = read_files(run_dir, MatchRecord)
    fitted = stored_ratings(run_dir)
    if matches:
        fitted = ratings.fit_versions((m.result() for m in matches), known=fitted)
    scored: dict[int, dict[int, AccuracyRecord]] = {}
    for record in read_files(run_dir, AccuracyRecord):  # oldest first: a newer score of the same sims wins
        version = _own_version(record.player)
        if version is not None:
            scored.setdefault(version, {})[record.sims] = record
    rated = {v: r for p, r in fitted.items() if (v := _own_version(p)) is not None}
    return {
        v: Standing(v, rated.get(v), list(scored.get(v, {}).values())) for v in sorted(rated.keys() | scored.keys())
    }


def best_version(run_dir: Path) -> tuple[int, str]:
    """The best version and why it is: the highest weak accuracy (then strong accuracy, then rating,
    then the newest) at the number of simulations most versions were scored with (the larger on a tie);
    without scored positions, the highest rating. AzjobsError if the run has neither."""
    found = standings(run_dir)
    counts = Counter(a.sims for s in found.values() for a in s.accuracy)
    if counts:
        sims = max(counts, key=lambda n: (counts[n], n))
        scored = {v: a for v, s in found.items() for a in s.accuracy if a.sims == sims}

        def rank(v: int) -> tuple[float, float, float, int]:
            rating = found[v].rating
            return scored[v].weak_accuracy, scored[v].strong_accuracy, rating.elo if rating else -1e9, v

        best = max(scored, key=rank)
        why = f"the most accurate: {scored[best].weak_accuracy:.1%} optimal moves with {sims} simulations"
        return best, why
    rated = {v: s.rating for v, s in found.items() if s.rating is not None}
    if rated:
        best = max(rated, key=lambda v: (rated[v].elo, v))
        return best, f"the best rated: {rated[best].elo:.0f} ± {rated[best].se:.0f} Elo"
    raise AzjobsError(
        f"run {run_dir} has no ratings or accuracy yet (evals/ has no results): name a version (net:V), "
        "or wait for the trainer's evaluations (eval_every_versions)"
    )
