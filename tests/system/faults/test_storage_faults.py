"""Processes that must not write into a run: a worker whose storage root is not mounted, a second
trainer, a second `azjobs run` on one folder. Each exits non-zero with one line naming why and the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import redis
from harness import AZJOBS, NEVER_TRAINS, TINY, Roles, selfplay_queue, wait_until

from azjobs import keys
from azjobs.settings import ENV_PREFIX
from azjobs.storage import marker
from azjobs.storage.atomic import host


def one_line_failure(args: list[str], cwd: Path, redis_url: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    done = subprocess.run(
        [*AZJOBS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**clean, "AZJOBS_REDIS_URL": redis_url},
    )
    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


def test_a_worker_without_the_storage_root_refuses(
    roles: Roles, tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    run_dir = tmp_path / "storage" / "um"
    roles.start("trainer", ["train", "--run-dir", str(run_dir), *TINY, *NEVER_TRAINS])
    wait_until(lambda: selfplay_queue(redis_client, "um").count >= 3, "the trainer to queue self-play")
    expected = redis_client.get(keys.marker("um")).decode()
    unmounted = tmp_path / "mnt" / "um"  # the mount point of the storage root, nothing mounted on it
    unmounted.mkdir(parents=True)
    line = one_line_failure(["worker", "--run-dir", str(unmounted), "--evaluator", "local"], tmp_path, redis_url)
    assert f"refuses to use {unmounted}: {unmounted} has no marker file" in line
    assert f"expected marker {expected}" in line and "mount the storage root" in line and "--run-dir" in line
    assert list(unmounted.iterdir()) == []  # nothing written on the local disk
    assert redis_client.llen(keys.shards("um")) == 0 and selfplay_queue(redis_client, "um").count >= 3


def test_a_second_trainer_is_refused(roles: Roles, tmp_path: Path, redis_client: redis.Redis, redis_url: str) -> None:
    run_dir = tmp_path / "storage" / "tt"
    first = roles.start("trainer", ["train", "--run-dir", str(run_dir), *TINY, *NEVER_TRAINS])
    wait_until(lambda: redis_client.get(keys.trainer_lease("tt")), "the first trainer to take the run")
    line = one_line_failure(["train", "--run-dir", str(run_dir), *TINY, *NEVER_TRAINS], tmp_path, redis_url)
    assert f"run 'tt' already has a trainer: {host()} pid {first.process.pid} holds {run_dir / 'trainer.lock'}" in line
    assert "stop that one first" in line
    # `azjobs run` on the same folder (its own embedded Redis) is refused before it starts anything.
    line = one_line_failure(
        ["run", "--run-dir", str(run_dir), "--minutes", "1", *TINY, *NEVER_TRAINS], tmp_path, redis_url
    )
    assert f"already has a trainer: {host()} pid {first.process.pid}" in line
    assert not (run_dir / ".local-redis-url").exists()
    assert first.process.poll() is None  # the first goes on
    assert first.stop() == 0
    assert redis_client.get(keys.trainer_lease("tt")) is None
    assert marker.check(redis_client, "tt", run_dir) == "ok"
