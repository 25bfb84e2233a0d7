"""What a worker process holds across jobs: the run, its settings and an evaluator.

`azjobs worker` builds one `WorkerContext` before it starts taking jobs, so a job pays
neither a fork nor a model load nor a settings read; jobs find it with `current()`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import numpy as np
import redis

from azjobs.errors import AzjobsError
from azjobs.eval import cost
from azjobs.games import Game
from azjobs.settings import Settings


class Evaluator(Protocol):
    """An `evaluate(planes) -> (policy_logits, values)` with the weights version it used."""

    last_version: int

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Progress:
    """Counters a worker's heartbeat reports while a job runs (read by its heartbeat thread)."""

    positions: int = 0  # moves played in self-play, all jobs together
    leaf_evals: int = 0  # positions sent to the network
    jobs_done: int = 0  # jobs this worker finished (or failed)
    job: str = ""  # the job it runs now: `<function> <job id>`, "" between jobs


@dataclass
class WorkerContext:
    redis: redis.Redis
    run: str
    run_dir: Path
    settings: Settings
    game: Game
    evaluator: Evaluator
    worker_name: str
    games_since_weight_check: int = field(default=0)
    progress: Progress = field(default_factory=Progress)


_CURRENT: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _CURRENT
    _CURRENT = context


def progress_of(run: str) -> Progress | None:
    """The counters of this worker's context for `run`; None outside a worker of that run."""
    return _CURRENT.progress if _CURRENT is not None and _CURRENT.run == run else None


def current(run: str) -> WorkerContext:
    if _CURRENT is None:
        raise AzjobsError("this job must run inside `azjobs worker` (it holds the run's evaluator)")
    if _CURRENT.run != run:
        raise AzjobsError(f"job for run {run!r} reached a worker of run {_CURRENT.run!r}")
    return _CURRENT


P = ParamSpec("P")
R = TypeVar("R")


def counted(kind: str) -> Callable[[Callable[Concatenate[str, P], R]], Callable[Concatenate[str, P], R]]:
    """A job function (its first argument the run) whose worker-seconds are added to the run's `kind`
    counter when it ends, failed or not (`azjobs.eval.cost`): what evaluation's share is measured from."""

    def wrap(function: Callable[Concatenate[str, P], R]) -> Callable[Concatenate[str, P], R]:
        @functools.wraps(function)
        def job(run: str, *args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            try:
                return function(run, *args, **kwargs)
            finally:
                ctx = _CURRENT
                if ctx is not None and ctx.run == run:
                    with contextlib.suppress(redis.RedisError):  # Redis gone: the job's own error says so
                        cost.add(ctx.redis, run, kind, time.monotonic() - started)

        return job

    return wrap
