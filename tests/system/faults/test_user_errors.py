"""A wrong Redis password, an unreachable Redis, a full disk: each role says so in one line and
exits non-zero; a disk that fills under a running system loses nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from disks import small_tmpfs
from harness import AZJOBS, TINY, TRAINS, Roles, assert_replay_consistent, selfplay_queue, wait_until

from azjobs.cluster import embedded
from azjobs.settings import ENV_PREFIX
from azjobs.storage.replay import list_shards
from azjobs.storage.weights import versions_in

PASSWORD = "s3cret-Pw"  # the password of the `password_server` fixture
ROLES = [["train", *TINY], ["gpu-serve"], ["worker"], ["status"]]


def one_line_failure(args: list[str], cwd: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    done = subprocess.run([*AZJOBS, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env={**clean, **env})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r[0])
def test_wrong_password(role: list[str], password_server: embedded.EmbeddedRedis, tmp_path: Path) -> None:
    url = password_server.url.replace(PASSWORD, "not-it")
    line = one_line_failure([*role, "--run-dir", "r", "--redis-url", url], tmp_path)
    assert "refused the password" in line and "not-it" not in line and PASSWORD not in line


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r[0])
def test_unreachable_redis(role: list[str], tmp_path: Path) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{embedded.free_port()}/0"
    line = one_line_failure([*role, "--run-dir", "r"], tmp_path, AZJOBS_REDIS_URL=url)
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in line and PASSWORD not in line


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 8 MiB tmpfs: a disk that really fills (ENOSPC), mounted for the test (root only)."""
    with small_tmpfs(tmp_path / "disk", 8) as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Write a file until the disk is full (unbuffered, down to single bytes); the file, to delete for room."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_train_on_a_full_disk(small_disk: Path, redis_url: str) -> None:
    fill(small_disk)
    line = one_line_failure(
        ["train", *TINY, "--run-dir", str(small_disk / "full")], small_disk, AZJOBS_REDIS_URL=redis_url
    )
    assert "storage root full: no space left on device writing" in line and str(small_disk / "full") in line


def test_disk_fills_under_a_running_system(
    small_disk: Path, tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    run_dir = small_disk / "df"
    common = ["--run-dir", str(run_dir)]
    roles = Roles(tmp_path / "logs", redis_url)  # the logs stay on the big disk
    try:
        trainer = roles.start("trainer", ["train", *common, *TINY, *TRAINS])
        worker = roles.start("worker", ["worker", *common, "--evaluator", "local"])
        wait_until(lambda: len(versions_in(run_dir / "weights")) >= 2, "training to start", timeout_s=150)
        filler = fill(small_disk)
        trainer.wait_for("storage root full: no space left on device writing")
        # The trainer pauses; the worker's job plays its games and, finding no room, keeps them in memory.
        queue = selfplay_queue(redis_client, "df")
        queue.enqueue_call("azjobs.jobs.selfplay.selfplay", args=("df", 10_000))  # one job at least, queued now
        worker.wait_for("games in memory until then")
        assert queue.failed_job_registry.count == 0
        stalled_at = versions_in(run_dir / "weights")[-1]
        shards_then = len(list_shards(redis_client, "df"))

        filler.unlink()
        trainer.wait_for("the storage root has room again")
        wait_until(lambda: len(list_shards(redis_client, "df")) > shards_then, "the held games to land")
        wait_until(lambda: versions_in(run_dir / "weights")[-1] >= stalled_at + 2, "training going on")
        for role in (trainer, worker):
            assert role.process.poll() is None, role.text()[-3000:]
        assert trainer.stop() == 0
    finally:
        roles.stop_all()
    # No version skipped or half written, no stray temporary file, the games all accounted for.
    versions = versions_in(run_dir / "weights")
    assert versions == list(range(1, versions[-1] + 1))
    assert not [p for p in (run_dir / "weights").iterdir() if p.name.startswith(".")]
    assert not [p for p in (run_dir / "replay").iterdir() if p.name.startswith(".")]
    assert_replay_consistent(redis_client, "df", run_dir)
    assert selfplay_queue(redis_client, "df").failed_job_registry.count == 0  # no games thrown away
