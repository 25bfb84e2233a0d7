"""Worker hosts whose clocks are 30 s off (libfaketime): no running job looks abandoned, so none is run
twice; a worker that really died is still reaped, by a reaper whose own clock is 30 s ahead."""

from __future__ import annotations

from pathlib import Path

import faketime
import redis
import torch
from harness import Roles, selfplay_queue, started_by, wait_until
from harness import worker_name as rq_name
from rq.job import JobStatus

from azjobs.games import get_game
from azjobs.jobs import reaper
from azjobs.net import build_model, to_bytes
from azjobs.run import publish
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore

SETTINGS = Settings(
    game="tictactoe", net_blocks=1, net_channels=8, num_simulations=4, games_per_job=4, temperature_moves=2
)


def skewed(offset_s: int) -> dict[str, str]:
    """The environment of a process whose wall clock is `offset_s` seconds off; its monotonic clock is true."""
    return faketime.skewed_env(offset_s)


def test_skewed_worker_clocks_never_requeue_running_jobs(
    roles: Roles, tmp_path: Path, redis_client: redis.Redis
) -> None:
    behind_env, ahead_env = skewed(-30), skewed(+30)  # skips here, before anything starts, if none works
    run_dir = tmp_path / "storage" / "sk"
    publish(redis_client, "sk", run_dir, SETTINGS)
    game = get_game("tictactoe")
    torch.manual_seed(1)
    WeightStore(redis_client, "sk", run_dir).publish(1, to_bytes(build_model(game, SETTINGS), {"version": 1}))
    queue = selfplay_queue(redis_client, "sk")
    # No inference server: every job waits for its first evaluation, held by its worker, mid-job.
    jobs = [queue.enqueue("azjobs.jobs.selfplay.selfplay", "sk", seed, job_timeout=3600) for seed in (1, 2, 3)]
    common = ["--run-dir", str(run_dir)]

    dead = roles.start("worker-dead", ["worker", *common])
    dead_job = wait_until(lambda: started_by(redis_client, "sk", rq_name("sk", dead)), "the first job to start")
    dead.kill()
    behind = roles.start("worker-behind", ["worker", *common], **behind_env)
    normal = roles.start("worker-normal", ["worker", *common])
    held = {
        role.name: wait_until(
            lambda r=role: started_by(redis_client, "sk", rq_name("sk", r)), f"{role.name} to start a job"
        )
        for role in (behind, normal)
    }
    # Idle (no job left): its maintenance reaps every 10 s, on a clock 30 s ahead.
    ahead = roles.start("worker-ahead", ["worker", *common], **ahead_env)
    ahead.wait_for(dead_job, timeout_s=120)  # it handed back the dead worker's job
    assert reaper.reap(redis_client, "sk", queue, lambda line: None) == []  # and nothing else, on any clock

    for role in (behind, normal):
        job = queue.fetch_job(held[role.name])
        assert job.get_status() == JobStatus.STARTED and job.worker_name == rq_name("sk", role), role.name
        assert role.process.poll() is None, role.text()[-2000:]
    handed = [line for role in roles.started for line in role.text().splitlines() if "handed back" in line]
    assert handed and all(held["worker-behind"] not in line and held["worker-normal"] not in line for line in handed)
    assert queue.fetch_job(dead_job).get_status() != JobStatus.STARTED
    assert {j.id for j in jobs} == {dead_job, *held.values()}
