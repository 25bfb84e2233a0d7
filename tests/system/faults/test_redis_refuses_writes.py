"""Redis refusing writes (out of memory under `maxmemory` + noeviction, or read-only as a replica):
gpu-serve and the trainer say so once, wait, and say when it is back, as for a lost connection; a
worker rides it out and goes on playing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from harness import NEVER_TRAINS, TINY, Roles, role_beat, wait_until

from azjobs import keys
from azjobs.cluster import embedded
from azjobs.run import publish
from azjobs.settings import Settings


@pytest.fixture
def own_redis() -> Iterator[embedded.EmbeddedRedis]:
    """A redis-server of this test alone: its memory limit and replication are changed at runtime."""
    server = embedded.start()
    try:
        yield server
    finally:
        server.stop()


def jobs_done(client: redis.Redis) -> int:
    return int(client.hget(keys.stats("oom"), "jobs") or 0)


def said(text: str, line: str) -> int:
    return sum(line in row for row in text.splitlines())


def test_out_of_memory_and_read_only_are_waited_out(own_redis: embedded.EmbeddedRedis, tmp_path: Path) -> None:
    client = redis.Redis.from_url(own_redis.url)
    run_dir = tmp_path / "storage" / "oom"
    roles = Roles(tmp_path / "logs", own_redis.url)
    try:
        trainer = roles.start("trainer", ["train", "--run-dir", str(run_dir), *TINY, *NEVER_TRAINS])
        server = roles.start("gpu-serve", ["gpu-serve", "--run-dir", str(run_dir)])
        server.wait_for("serving run 'oom'")
        worker = roles.start("worker", ["worker", "--run-dir", str(run_dir)])
        # A worker of a run without jobs: it waits in RQ's dequeue, whose heartbeat is a write.
        idle_dir = tmp_path / "storage" / "idle"
        publish(client, "idle", idle_dir, Settings(game="tictactoe"))
        idle = roles.start("worker-idle", ["worker", "--run-dir", str(idle_dir)])
        idle.wait_for("taking jobs")
        wait_until(lambda: role_beat(client, "oom", "trainer"), "the trainer's heartbeat")
        wait_until(lambda: jobs_done(client) >= 1, "a job done")

        client.set("ballast", b"x" * 2_000_000)  # more than the limit below: every write is refused
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1mb")
        for role, line in (
            (server, "Redis is out of memory"),
            (trainer, "trainer: Redis is out of memory"),
            (idle, "lost Redis (gone, or refusing writes)"),
        ):
            role.wait_for(line)
        client.config_set("maxmemory", "0")
        client.delete("ballast")
        server.wait_for("Redis is back")
        trainer.wait_for("trainer: Redis is back")
        idle.wait_for("Redis is back; taking jobs again")

        client.execute_command("REPLICAOF", "127.0.0.1", str(embedded.free_port()))  # a primary nobody runs
        for role, line in ((server, "Redis is read-only"), (trainer, "trainer: Redis is read-only")):
            role.wait_for(line)
        client.execute_command("REPLICAOF", "NO", "ONE")
        wait_until(lambda: said(server.text(), "Redis is back") == 2, "gpu-serve to say Redis is back again")
        wait_until(lambda: said(trainer.text(), "trainer: Redis is back") == 2, "the trainer to say it again")
        done = jobs_done(client)
        wait_until(lambda: jobs_done(client) > done, "the worker to finish another job")
        for role in (worker, idle):
            assert role.process.poll() is None, role.text()[-3000:]
        assert "already" not in idle.text()  # its RQ name was free again for the worker that took over
        for role in (trainer, server):
            assert role.process.poll() is None, f"{role.name} died:\n{role.text()[-3000:]}"
            assert said(role.text(), "out of memory") == 1 and said(role.text(), "read-only") == 1
            assert "Traceback" not in role.text()
    finally:
        roles.stop_all()
