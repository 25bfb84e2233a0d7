"""A Redis blip under a self-play job in flight: Redis restarted (empty) for about a second while the
job searches. The job rides it out, resends what Redis lost, and its games land once."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from harness import NEVER_TRAINS, TINY, Roles, assert_replay_consistent, selfplay_queue, started_by, wait_until
from harness import worker_name as rq_name
from test_redis_restarted import RestartableRedis, restartable  # noqa: F401 (a fixture)

from azjobs import keys
from azjobs.storage.replay import shard_names

LONG_JOBS = ["--games-per-job", "48", "--num-simulations", "16"]  # a job that is surely still searching


def test_a_job_in_flight_rides_out_a_redis_restart(restartable: RestartableRedis, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    run_dir = tmp_path / "storage" / "bl"
    common = ["--run-dir", str(run_dir)]
    roles = Roles(tmp_path / "logs", restartable.url)
    client = redis.Redis.from_url(restartable.url)
    try:
        trainer = roles.start("trainer", ["train", *common, *TINY, *LONG_JOBS, *NEVER_TRAINS])
        server = roles.start("gpu-serve", ["gpu-serve", *common])
        server.wait_for("serving run 'bl'")
        worker = roles.start("worker", ["worker", *common])
        in_flight = wait_until(lambda: started_by(client, "bl", rq_name("bl", worker)), "a job to start")
        # Mid-search: the worker has had answers from the server for this job.
        wait_until(
            lambda: int(client.hget(keys.heartbeat("bl", "worker", rq_name("bl", worker)), "leaf_evals") or 0) > 0,
            "the job's first evaluations",
        )

        restartable.kill()
        time.sleep(1.0)
        restartable.start()  # empty: the requests in flight are gone with everything else
        client = redis.Redis.from_url(restartable.url)

        wait_until(
            lambda: any(in_flight in name for name in shard_names(run_dir / "replay")),
            "the job in flight to store its games",
            timeout_s=150,
        )
        for role in (trainer, server, worker):
            assert role.process.poll() is None, f"{role.name} died:\n{role.text()[-3000:]}"
        failed = selfplay_queue(client, "bl").failed_job_registry.get_job_ids()
        assert in_flight not in failed
        assert "Traceback" not in worker.text(), worker.text()[-3000:]
    finally:
        roles.stop_all()
    wait_until(lambda: client.exists(keys.settings("bl")), "the run restored in Redis")
    names = [n for n in shard_names(run_dir / "replay") if in_flight in n]
    assert len(names) == 1  # its games, once
    assert_replay_consistent(client, "bl", run_dir)
