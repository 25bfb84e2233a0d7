"""The trainer against a restored Redis and against a second trainer: versions on disk are never
published again, job seeds never repeat, and only one trainer runs a run."""

from __future__ import annotations

import json
import os
import threading
import zlib
from pathlib import Path

import pytest
import redis
from rq.job import Job
from test_trainer import SETTINGS, StopWhenWaiting, queued_jobs, quiet_trainer

from azjobs import keys
from azjobs.jobs import evaluate
from azjobs.run import Run
from azjobs.storage import lease
from azjobs.storage.atomic import host
from azjobs.storage.weights import WeightStore, versions_in
from azjobs.train import trainer


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "tf"


def test_a_redis_restored_from_an_older_snapshot_never_overwrites_versions(
    redis_client: redis.Redis, run_dir: Path
) -> None:
    run = run_dir.name
    store = WeightStore(redis_client, run, run_dir)
    for version in range(1, 6):
        store.publish(version, f"weights {version}".encode())
    before = {v: store.path(v).read_bytes() for v in range(1, 6)}
    redis_client.set(keys.weights_latest(run), 2)  # the snapshot was taken at version 2
    t = quiet_trainer(redis_client, run_dir, SETTINGS)
    assert t.state.version == 5
    assert int(redis_client.get(keys.weights_latest(run))) == 5  # workers are served the newest again
    t.state.version += 1  # as a step that publishes does
    t.publish()
    assert versions_in(run_dir / "weights") == [1, 2, 3, 4, 5, 6]
    assert {v: store.path(v).read_bytes() for v in range(1, 6)} == before
    assert int(redis_client.get(keys.weights_latest(run))) == 6


def test_staged_candidates_count_on_resume(redis_client: redis.Redis, run_dir: Path) -> None:
    store = WeightStore(redis_client, run_dir.name, run_dir)
    store.publish(1, b"one")
    store.stage(4, b"four")
    redis_client.flushall()  # a Redis that lost everything
    assert quiet_trainer(redis_client, run_dir, SETTINGS.replace(gating=True)).state.version == 4


def seeds_of(client: redis.Redis, run: str) -> list[int]:
    return [job[2][1] for job in queued_jobs(client, run)]


def test_job_seeds_never_repeat_after_a_restore(redis_client: redis.Redis, run_dir: Path) -> None:
    run = run_dir.name
    t = quiet_trainer(redis_client, run_dir, SETTINGS)
    t.top_up_queue()
    first = seeds_of(redis_client, run)
    t.queue.empty()
    redis_client.hdel(keys.stats(run), "jobs_enqueued", "evals_enqueued")  # what a restored Redis has
    t.top_up_queue()
    again = seeds_of(redis_client, run)
    assert len(first) == len(again) == SETTINGS.selfplay_queue_depth
    assert not set(first) & set(again) and len(set(first)) == len(first)
    # Evaluation jobs too.
    eval_seeds = []
    for _ in range(2):
        job = evaluate.enqueue_match(redis_client, run, "random", "oneply", 2)
        eval_seeds.append(json.loads(zlib.decompress(redis_client.hget(Job.key_for(job.id), "data")))[2][4])
        redis_client.delete(keys.stats(run))
    assert eval_seeds[0] != eval_seeds[1]


def wait_for_lease(client: redis.Redis, run: str, thread: threading.Thread) -> bytes:
    while thread.is_alive():
        raw = client.get(keys.trainer_lease(run))
        if raw is not None:
            return raw
        threading.Event().wait(0.05)
    pytest.fail("the first trainer stopped before it took the run")


def test_a_second_trainer_is_refused_naming_the_first(redis_client: redis.Redis, run_dir: Path) -> None:
    run = run_dir.name
    stop = threading.Event()
    logs: list[str] = []
    first = threading.Thread(
        target=trainer.run,
        args=(SETTINGS, Run(run, run_dir, redis_client)),
        kwargs={"device": "cpu", "stop": stop, "log": logs.append},
    )
    first.start()
    try:
        held = json.loads(wait_for_lease(redis_client, run, first))
        assert (held["host"], held["pid"]) == (host(), os.getpid())
        with pytest.raises(lease.TrainerBusyError) as refused:
            trainer.run(SETTINGS, Run(run, run_dir, redis_client), device="cpu", log=logs.append)
        message = str(refused.value)
        assert (
            f"run {run!r} already has a trainer: {host()} pid {os.getpid()} holds {run_dir / 'trainer.lock'}" in message
        )
        assert "stop that one first" in message and "\n" not in message
    finally:
        stop.set()
        first.join(timeout=60)
    assert redis_client.get(keys.trainer_lease(run)) is None  # given back on exit
    trainer.run(SETTINGS, Run(run, run_dir, redis_client), device="cpu", stop=StopWhenWaiting(), log=logs.append)


def test_a_lease_renewed_from_another_host_is_refused_and_a_dead_ones_taken_over(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    key = keys.trainer_lease("l")
    other = lease.Holder("gpu-2.lan", 4242, "t0")
    redis_client.set(key, other.to_json(), px=60_000)
    logs: list[str] = []
    with pytest.raises(lease.TrainerBusyError, match="gpu-2.lan pid 4242"):
        lease.TrainerLease.acquire(redis_client, "l", tmp_path / "a", ttl_s=0.3, poll_s=0.1, log=logs.append)
    assert "waiting up to 0.3 s for the lease to expire" in logs[0]
    assert lease.holder_of(tmp_path / "a") is None  # the refused one let go of the lock file
    # A trainer of this host that died (kill -9) left its lease: the next one takes it at once.
    dead = subprocess_pid_that_exited()
    redis_client.set(key, lease.Holder(host(), dead, "t1").to_json(), px=60_000)
    taken = lease.TrainerLease.acquire(redis_client, "l", tmp_path / "a", ttl_s=30)
    try:
        assert json.loads(redis_client.get(key))["pid"] == os.getpid()
    finally:
        taken.release()


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_a_trainer_that_lost_its_lease_stops(redis_client: redis.Redis, tmp_path: Path) -> None:
    held = lease.TrainerLease.acquire(redis_client, "lost", tmp_path / "x", ttl_s=30)
    stop = threading.Event()
    held.keep(stop, every_s=0.05)
    try:
        # Partitioned past its lease, it finds another trainer holding the run.
        redis_client.set(keys.trainer_lease("lost"), lease.Holder("gpu-2.lan", 7, "t").to_json())
        assert stop.wait(timeout=30)
        assert "gpu-2.lan pid 7" in held.lost and "this trainer stopped" in held.lost
    finally:
        held.release()
    assert redis_client.get(keys.trainer_lease("lost")) is not None  # not ours: left alone
