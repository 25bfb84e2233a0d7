"""Redis restarted empty under a running system: the newest weights, the settings and the shard index
come back from the storage root; the roles ride it out and training goes on."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from harness import TINY, TRAINS, Roles, assert_replay_consistent, wait_until

from azjobs import keys
from azjobs.cluster import embedded
from azjobs.storage.replay import shard_names
from azjobs.storage.weights import versions_in


class RestartableRedis:
    """A redis-server on a fixed unix socket, keeping nothing on disk: a restart comes back empty."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = [
            embedded.redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url).ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, "redis-server to answer", timeout_s=20, every_s=0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[RestartableRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RestartableRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_restarted_empty(restartable: RestartableRedis, tmp_path: Path) -> None:
    run_dir = tmp_path / "storage" / "rr"
    common = ["--run-dir", str(run_dir)]
    roles = Roles(tmp_path / "logs", restartable.url)
    try:
        trainer = roles.start("trainer", ["train", *common, *TINY, *TRAINS])
        server = roles.start("gpu-serve", ["gpu-serve", *common])
        workers = [roles.start(f"worker-{i}", ["worker", *common]) for i in range(2)]
        wait_until(lambda: len(versions_in(run_dir / "weights")) >= 3, "three weights versions", timeout_s=150)

        restartable.kill()
        time.sleep(3)  # long enough that every role notices it is gone
        restartable.start()  # empty
        client = redis.Redis.from_url(restartable.url)
        before = versions_in(run_dir / "weights")[-1]
        shards_before = set(shard_names(run_dir / "replay"))

        # The run's state comes back from the storage root, and the run goes on.
        wait_until(lambda: client.get(keys.settings("rr")), "the settings back in Redis")
        wait_until(lambda: int(client.get(keys.weights_latest("rr")) or 0) >= before, "the newest weights back")
        indexed = lambda: {r.decode() for r in client.lrange(keys.shards("rr"), 0, -1)}  # noqa: E731
        wait_until(
            lambda: all(any(name in r for r in indexed()) for name in shards_before),
            "every shard written before the restart back in the index",
        )
        wait_until(lambda: versions_in(run_dir / "weights")[-1] >= before + 2, "training going on", timeout_s=150)
        wait_until(lambda: len(set(shard_names(run_dir / "replay")) - shards_before) >= 2, "new games stored")
        for role in (trainer, server, *workers):
            assert role.process.poll() is None, f"{role.name} died:\n{role.text()[-3000:]}"
    finally:
        roles.stop_all()
    assert_replay_consistent(client, "rr", run_dir)
    assert "Traceback" not in trainer.text() + server.text()
