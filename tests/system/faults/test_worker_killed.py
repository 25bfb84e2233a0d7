"""A worker killed with SIGKILL mid-job: its job is retried (or failed) in RQ, no partial shard is read,
no position is counted twice."""

from __future__ import annotations

import random
import time
from pathlib import Path

import redis
from harness import NEVER_TRAINS, TINY, Roles, assert_replay_consistent, selfplay_queue, started_by, wait_until
from harness import worker_name as rq_name
from rq.job import JobStatus


def test_worker_killed_mid_job(roles: Roles, tmp_path: Path, redis_client: redis.Redis) -> None:
    run_dir = tmp_path / "storage" / "wk"
    common = ["--run-dir", str(run_dir)]
    trainer = roles.start("trainer", ["train", *common, *TINY, *NEVER_TRAINS])
    trainer.wait_for("published weights version 1")

    # No inference server yet: the worker's job waits for its first evaluation, surely mid-job.
    stuck = roles.start("worker-stuck", ["worker", *common])
    job_id = wait_until(lambda: started_by(redis_client, "wk", rq_name("wk", stuck)), "the job to start")
    stuck.kill()
    queue = selfplay_queue(redis_client, "wk")
    assert queue.fetch_job(job_id).get_status() == JobStatus.STARTED  # RQ alone would wait hours

    roles.start("gpu-serve", ["gpu-serve", *common])
    # Kill workers again at random moments, while they play, write and register shards.
    rng = random.Random(5)
    for i in range(3):
        victim = roles.start(f"worker-victim-{i}", ["worker", *common])
        victim.wait_for("taking jobs")
        time.sleep(rng.uniform(0.2, 2.5))
        victim.kill()
    survivor = roles.start("worker", ["worker", *common])

    def settled() -> bool:
        return queue.fetch_job(job_id).get_status() in (JobStatus.FINISHED, JobStatus.FAILED)

    wait_until(settled, "the killed worker's job to be retried and finished, or failed", timeout_s=150)
    status = queue.fetch_job(job_id).get_status()
    assert "handed back to RQ" in survivor.text() or any("handed back" in r.text() for r in roles.started)

    # Every job a killed worker held is settled too: none stays `started` for a dead worker.
    wait_until(
        lambda: (
            not queue.started_job_registry.get_job_ids(cleanup=False)
            or all(
                j.worker_name == rq_name("wk", survivor)
                for j in map(queue.fetch_job, queue.started_job_registry.get_job_ids(cleanup=False))
                if j
            )
        ),
        "no job left started by a dead worker",
        timeout_s=60,
    )
    survivor.stop()
    roles.stop_all()

    positions = assert_replay_consistent(redis_client, "wk", run_dir)
    assert positions > 0
    replay = run_dir / "replay"
    shards_of_job = [p for p in replay.glob(f"*-{job_id}.h5")]
    assert len(shards_of_job) == (1 if status == JobStatus.FINISHED else 0)
    # A write a kill cut short stays a hidden temporary file that nothing reads or indexes.
    for leftover in replay.glob(".*"):
        assert leftover.name.startswith(".tmp-")
