"""Helpers of the cross-host fault tests: a cluster started with the scripts on hosts in namespaces, what its
Redis holds (asked from the head, the only place it can be reached), and the replay shards on the storage root."""

from __future__ import annotations

import json
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
from netns import HEAD_ADDRESS, SCRIPTS, Host, check, env_for

URL = f"redis://{HEAD_ADDRESS}:6379/0"

# What a run's Redis holds that the checks need (jobs: self-play and evaluation), printed as one JSON object
# (run inside the head's namespace).
FACTS = """
import json, sys
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from azjobs import keys
from azjobs.cluster.connection import connect
from azjobs.storage.replay import list_shards
client, run = connect(), sys.argv[1]
queue, evals = (Queue(name, connection=client, serializer=JSONSerializer)
                for name in (keys.selfplay_queue(run), keys.eval_queue(run)))
ids = [i for q in (queue, evals) for i in (*q.finished_job_registry.get_job_ids(), *q.get_job_ids(),
       *q.failed_job_registry.get_job_ids(), *q.started_job_registry.get_job_ids())]
jobs = [j for j in Job.fetch_many(ids, connection=client, serializer=JSONSerializer) if j is not None]
latest = client.get(keys.weights_latest(run))
print(json.dumps({
    "index": [info.name for info in list_shards(client, run)],
    "stats": {k.decode(): int(v) for k, v in client.hgetall(keys.stats(run)).items()},
    "weights_latest": int(latest) if latest is not None else None,
    "queued": queue.count,
    "failed": queue.failed_job_registry.count + evals.failed_job_registry.count,
    "retried": sorted(j.id for j in jobs if j.retries_left is not None and j.retries_left < 1),
}))
"""


@dataclass
class Cluster:
    """The run `tt` of one test: its head, the storage root, and the password of the head's Redis."""

    head: Host
    storage: Path
    password: str = ""

    @property
    def run_dir(self) -> Path:
        return self.storage / "tt"

    def env(self, host: Host, **extra: str) -> dict[str, str]:
        return env_for(host, AZJOBS_REDIS_PASSWORD=self.password, AZJOBS_REDIS_URL=URL, **extra)

    def start_head(self) -> None:
        check(
            self.head.run(
                [str(SCRIPTS / "start_head.sh"), "--bind", HEAD_ADDRESS, "--no-dashboard"], env_for(self.head)
            )
        )
        self.password = (self.head.state / "redis.password").read_text().strip()

    def start_gpu(self, host: Host, run_dir: Path, *train: str) -> None:
        check(
            host.run(
                [str(SCRIPTS / "start_gpu.sh"), "--run-dir", str(run_dir), "--game", "tictactoe", *train],
                self.env(host),
            )
        )

    def start_workers(self, host: Host, run_dir: Path, count: int, **env: str) -> subprocess.CompletedProcess:
        """scripts/start_worker.sh on `host`; the test fails if the script does (see `worker_script`)."""
        return check(self.worker_script(host, run_dir, count, **env))

    def worker_script(self, host: Host, run_dir: Path, count: int, **env: str) -> subprocess.CompletedProcess:
        return host.run(
            [str(SCRIPTS / "start_worker.sh"), "--run-dir", str(run_dir), "-n", str(count)], self.env(host, **env)
        )

    def stop(self, host: Host, *flags: str) -> None:
        check(host.run([str(SCRIPTS / "stop_cluster.sh"), *flags], env_for(host)))

    def facts(self) -> dict:
        return json.loads(check(self.head.run([sys.executable, "-c", FACTS, "tt"], self.env(self.head))).stdout)

    def status(self) -> dict:
        command = [sys.executable, "-m", "azjobs", "status", "--json", "--run-dir", str(self.run_dir)]
        return json.loads(check(self.head.run(command, self.env(self.head))).stdout)

    def restart_redis(self) -> None:
        """SIGTERM the head's Redis (it writes its append-only file), then the head's script starts it again."""
        pidfile = self.head.state / "pids" / "redis.pid"
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), "the head's Redis to stop", timeout_s=60)
        self.start_head()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def daemon_pid(host: Host, name: str) -> int:
    return int((host.state / "pids" / f"{name}.pid").read_text())


def wait_until(check_: Callable[[], object], what: str, timeout_s: float, every_s: float = 2.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check_()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


@dataclass(frozen=True)
class ShardFile:
    name: str
    job_id: str
    worker: str
    games: int
    positions: int


def shard_files(replay: Path) -> list[ShardFile]:
    """The finished shard files in `replay`, read as the trainer would (a file it cannot open fails the test)."""
    found = []
    for path in sorted(replay.glob("*.h5")) if replay.is_dir() else []:
        if path.name.startswith("."):
            continue
        with h5py.File(path, "r") as f:
            found.append(
                ShardFile(
                    path.name,
                    str(f.attrs["job_id"]),
                    str(f.attrs["worker"]),
                    int(f.attrs["games"]),
                    int(f.attrs["positions"]),
                )
            )
    return found


def assert_counted_once(facts: dict, replay: Path) -> list[ShardFile]:
    """Every shard on the storage root listed once and nothing else listed; the counters are the sums over
    the files; every job's games in one shard. Returns the shard files."""
    files = shard_files(replay)
    index = facts["index"]
    assert len(index) == len(set(index)), f"a shard is listed twice: {sorted(index)}"
    missing = sorted(set(index) - {f.name for f in files})
    assert not missing, f"listed but not on the storage root the trainer reads: {missing}"
    assert sorted(index) == [f.name for f in files], "shards on the storage root that are not listed"
    stats = facts["stats"]
    assert stats.get("games", 0) == sum(f.games for f in files), f"games counted {stats.get('games')}"
    assert stats.get("positions", 0) == sum(f.positions for f in files)
    assert stats.get("shards", 0) == len(files)
    jobs = [f.job_id for f in files]
    twice = sorted({j for j in jobs if jobs.count(j) > 1})
    assert not twice, f"jobs whose games landed in two shards: {twice}"
    return files
