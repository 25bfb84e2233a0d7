"""What evaluation costs self-play: the worker-seconds each kind of job has taken, run-wide, and the
share of them that went to evaluation jobs (matches, accuracy, gates), which `eval_budget` bounds.

Every job adds its own duration to the run's `jobs:seconds` hash when it ends, failed or not
(`azjobs.jobs.context.counted`); the trainer's schedule, `azjobs status` and the summary of
`azjobs run` read it here. A Redis that lost the hash starts counting again from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from azjobs import keys
from azjobs.cluster.connection import as_text_hash

SELFPLAY = "selfplay"
EVAL_KINDS = ("match", "accuracy", "gate")  # the jobs of the eval queue
KINDS = (SELFPLAY, *EVAL_KINDS)


def add(client: redis.Redis, run: str, kind: str, seconds: float) -> None:
    """Count `seconds` of a worker's time in a job of `kind` (one of KINDS)."""
    client.hincrbyfloat(keys.job_seconds(run), kind, max(0.0, seconds))


@dataclass(frozen=True)
class Cost:
    """Worker-seconds by kind of job, over the whole run."""

    seconds: dict[str, float] = field(default_factory=dict)  # kind -> worker-seconds

    @property
    def eval_seconds(self) -> float:
        return sum(self.seconds.get(kind, 0.0) for kind in EVAL_KINDS)

    @property
    def selfplay_seconds(self) -> float:
        return self.seconds.get(SELFPLAY, 0.0)

    @property
    def share(self) -> float:
        """Evaluation's share of the workers' time in jobs (0 before any job has ended)."""
        return share(self.eval_seconds, self.selfplay_seconds)

    def share_after(self, more_eval_seconds: float) -> float:
        """The share once `more_eval_seconds` more of evaluation have been spent (and no more self-play)."""
        return share(self.eval_seconds + more_eval_seconds, self.selfplay_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "eval_seconds": round(self.eval_seconds, 1),
            "selfplay_seconds": round(self.selfplay_seconds, 1),
            "share": round(self.share, 4),
            "seconds": {kind: round(self.seconds.get(kind, 0.0), 1) for kind in KINDS},
        }


def share(eval_seconds: float, selfplay_seconds: float) -> float:
    total = eval_seconds + selfplay_seconds
    return eval_seconds / total if total > 0 else 0.0


def read(client: redis.Redis, run: str) -> Cost:
    found = {}
    for kind, value in as_text_hash(client.hgetall(keys.job_seconds(run))).items():
        try:
            found[kind] = float(value)
        except ValueError:  # not written by azjobs: the other kinds still count
            continue
    return Cost(found)


def describe(cost: Cost, budget: float | None = None) -> str:
    """One line, e.g. `3.2% of the workers' time (41 of 1,280 s; budget 5%)`."""
    total = cost.eval_seconds + cost.selfplay_seconds
    if total <= 0:
        return "no jobs finished yet"
    limit = "" if budget is None else ("; no budget" if budget >= 1 else f"; budget {budget:.0%}")
    return f"{cost.share:.1%} of the workers' time ({cost.eval_seconds:,.0f} of {total:,.0f} s{limit})"
