"""TensorBoard event files of a run: losses, learning rate, positions, evaluations/s and batch fill."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_trainer import SETTINGS, add_shard, train

from azjobs.cluster import heartbeat


def test_event_files_hold_the_run_curves(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "cv"
    info = add_shard(redis_client, run_dir, seed=0)
    heartbeat.beat(redis_client, "cv", "gpu-serve", "gpu-1", {"evals_per_s": 1500.0, "batch_fill": 0.5})
    heartbeat.beat(redis_client, "cv", "gpu-serve", "gpu-2", {"evals_per_s": 500.0, "batch_fill": 1.0})
    train(redis_client, run_dir, max_steps=20)

    events = EventAccumulator(str(run_dir / "logs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "loss/loss",
        "loss/policy_loss",
        "loss/value_loss",
        "train/learning_rate",
        "selfplay/positions",
        "selfplay/games",
        "inference/evals_per_s",
        "inference/batch_fill",
        "train/version",
    } <= tags
    assert [e.step for e in events.Scalars("loss/loss")] == [10, 20]
    assert events.Scalars("train/learning_rate")[-1].value == pytest.approx(SETTINGS.learning_rate)
    assert events.Scalars("selfplay/positions")[-1].value == info.positions
    assert events.Scalars("inference/evals_per_s")[-1].value == 2000.0  # summed over the live servers
    assert events.Scalars("inference/batch_fill")[-1].value == 0.75  # their mean
