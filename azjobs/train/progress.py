"""What the trainer records of its progress: TensorBoard curves (its losses, the run's self-play and
inference figures, evaluation results), the ratings refitted from new matches, and its heartbeat."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import torch

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.eval import records
from azjobs.eval.match import MatchRecord
from azjobs.settings import Settings, process_settings
from azjobs.train.curves import record_run

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


@dataclass(frozen=True)
class Snapshot:
    """The trainer's figures at one moment: for its curves and its heartbeat."""

    step: int
    version: int
    samples_trained: int
    replay_size: int  # positions held
    replay_window: int  # of those, how many the batches are drawn from
    train_seconds: float
    learning_rate: float
    losses: Mapping[str, float]  # LOSS_NAMES -> the mean since they were last read
    waiting: str
    selfplay_paused: str


# TensorBoard.


def summary_writer(logdir: Path) -> SummaryWriter | None:
    """A SummaryWriter on `logdir`, or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; a stripped install just loses the curves
        return None
    logdir.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(str(logdir))


def record_curves(writer: Any, client: redis.Redis, run: str, snap: Snapshot) -> None:
    """The training curves at `snap.step`, with the run's self-play and inference figures."""
    for name, value in snap.losses.items():
        writer.add_scalar(f"loss/{name}", value, snap.step)
    writer.add_scalar("train/learning_rate", snap.learning_rate, snap.step)
    record_run(writer, client, run, snap.step)
    writer.add_scalar("train/version", snap.version, snap.step)
    writer.add_scalar("train/replay_size", snap.replay_size, snap.step)
    writer.add_scalar("train/replay_window", snap.replay_window, snap.step)


# Evaluation results: ratings, and points on the curves.


@dataclass
class EvalsSeen:
    """How many of the run's evaluation records have been taken in (refitted, drawn) so far."""

    matches: int = 0
    scores: int = 0


def record_evals(client: redis.Redis, run: str, run_dir: Path, seen: EvalsSeen, writer: Any) -> None:
    """Refit the ratings when matches came in; with a `writer`, new results become points on its curves.

    `seen` is moved on before the refit, as the records are read."""
    counts = (records.count(client, run, MatchRecord), records.count(client, run, records.AccuracyRecord))
    if counts == (seen.matches, seen.scores):
        return
    matches = records.read(client, run, MatchRecord)
    scored = records.read(client, run, records.AccuracyRecord)
    new_matches, new_scores = matches[seen.matches :], scored[seen.scores :]
    seen.matches, seen.scores = len(matches), len(scored)
    fitted = records.refit(client, run, run_dir, matches) if new_matches else {}
    if writer is None:
        return
    for record in new_scores:
        if "step" in record.version:
            suffix = "" if record.sims else "_net"  # with search, and the network alone
            step = int(record.version["step"])
            writer.add_scalar(f"eval/weak_accuracy{suffix}", record.weak_accuracy, step)
            writer.add_scalar(f"eval/strong_accuracy{suffix}", record.strong_accuracy, step)
    rated = {
        int(info["step"]): name
        for m in new_matches
        for name, info in m.versions.items()
        if name in fitted and "step" in info
    }
    for step, name in sorted(rated.items()):
        writer.add_scalar("eval/elo", fitted[name].elo, step)


# The heartbeat.


def send_heartbeat(
    client: redis.Redis,
    run: str,
    pid: str,
    snap: Snapshot,
    *,
    steps_per_s: float,
    device: torch.device,
    precision: str,
    settings: Settings,
) -> None:
    """The trainer's figures into its hash (for `azjobs status`) and its heartbeat, with its process settings."""
    fields = {
        "step": snap.step,
        "version": snap.version,
        "samples_trained": snap.samples_trained,
        "replay_size": snap.replay_size,
        "replay_window": snap.replay_window,
        "train_seconds": round(snap.train_seconds, 1),
        "steps_per_s": round(steps_per_s, 2),
        "waiting": snap.waiting,
        "selfplay_paused": snap.selfplay_paused,
        "device": str(device),
        "precision": precision,
        **{k: round(v, 4) for k, v in snap.losses.items()},
        **{name: getattr(settings, name) for name in process_settings("train")},
    }
    client.hset(keys.trainer(run), mapping={k: str(v) for k, v in fields.items()})
    heartbeat.beat(client, run, "trainer", pid, fields)
