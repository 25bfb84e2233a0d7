"""gpu-serve killed (SIGKILL) mid-run and started again: the workers stall, then resume by themselves;
every job they held finishes, none fails, and the games they stored are whole."""

from __future__ import annotations

from pathlib import Path

import redis
from harness import NEVER_TRAINS, TINY, Roles, assert_replay_consistent, selfplay_queue, wait_until
from rq.job import JobStatus

from azjobs import keys
from azjobs.games import get_game
from azjobs.storage.replay import shard_names
from azjobs.storage.shards import read_shard


def jobs_done(client: redis.Redis, run: str) -> int:
    return int(client.hget(keys.stats(run), "jobs") or 0)


def test_server_killed_and_restarted(roles: Roles, tmp_path: Path, redis_client: redis.Redis) -> None:
    run_dir = tmp_path / "storage" / "sk"
    common = ["--run-dir", str(run_dir)]
    queue = selfplay_queue(redis_client, "sk")
    trainer = roles.start("trainer", ["train", *common, *TINY, *NEVER_TRAINS])
    trainer.wait_for("published weights version 1")
    server = roles.start("gpu-serve-1", ["gpu-serve", *common])
    for i in range(2):
        roles.start(f"worker-{i}", ["worker", *common])
    wait_until(lambda: jobs_done(redis_client, "sk") >= 2, "two jobs done with the first server")

    # Kill it while jobs wait on it: requests it had popped die with it.
    server.kill()
    # The jobs the workers hold now wait on a server that is gone (or on one that is not there yet).
    in_flight = wait_until(lambda: set(queue.started_job_registry.get_job_ids(cleanup=False)), "jobs held")
    done_at_kill = jobs_done(redis_client, "sk")

    restarted = roles.start("gpu-serve-2", ["gpu-serve", *common])
    restarted.wait_for("serving run 'sk'")

    def held_jobs_finished() -> bool:
        return all(queue.fetch_job(j).get_status() == JobStatus.FINISHED for j in in_flight)

    wait_until(held_jobs_finished, "the jobs held at the kill to finish after the restart", timeout_s=120)
    wait_until(lambda: jobs_done(redis_client, "sk") >= done_at_kill + 3, "more jobs after the restart")
    roles.stop_all()

    assert queue.failed_job_registry.count == 0
    assert "Traceback" not in restarted.text()
    assert_replay_consistent(redis_client, "sk", run_dir)
    game = get_game("tictactoe")
    for name in shard_names(run_dir / "replay"):  # each reply went to its own search: the games are sound
        read_shard(
            run_dir / "replay" / name, game=game.name, planes_shape=game.planes_shape, num_actions=game.num_actions
        )
