"""The self-play job: play `games_per_job` games, `games_in_flight` at a time, store them as one replay shard.

The games in flight form two groups whose requests alternate (`play_pipelined`): while one group's
leaves are at the inference server, the worker searches the other.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rq import get_current_job

from azjobs.errors import StorageFullError
from azjobs.game_records import GameRecords
from azjobs.jobs import context
from azjobs.jobs.configs import selfplay_config
from azjobs.search.selfplay import AsyncEvaluator, ResignCounts, SyncEvaluator, play_pipelined
from azjobs.storage import marker
from azjobs.storage.replay import REPLAY_DIR, register_shard
from azjobs.storage.shards import ShardError, ShardInfo, read_shard_info, shard_name, write_shard

FULL_DISK_RETRY_S = 5.0  # how often games held back by a full disk are tried again


@context.counted("selfplay")
def selfplay(run: str, seed: int, simulations: int | None = None) -> dict[str, Any]:
    """RQ job (queue `azjobs:<run>:selfplay`): returns a JSON summary of the games played. `simulations`:
    the search's count when the trainer queued the job with progressive simulations (else num_simulations).

    Idempotent by job: the shard's name comes from the job (its id and creation time), so a retried
    job whose shard landed already registers that one (if it is not yet) and plays nothing again.
    """
    ctx = context.current(run)
    job = get_current_job()
    job_id = job.id if job is not None else f"local-{seed}"
    created = job.created_at.timestamp() if job is not None and job.created_at is not None else time.time()
    landed = _landed_before(ctx, run, ctx.run_dir / REPLAY_DIR / shard_name(created, job_id))
    if landed is not None:
        return landed
    maybe_sync_weights(ctx)
    started = time.monotonic()
    leaf_evals = 0

    def on_step(leaves: int, moves: int) -> None:
        nonlocal leaf_evals
        leaf_evals += leaves
        ctx.progress.leaf_evals += leaves
        ctx.progress.positions += moves

    rng = np.random.default_rng([ctx.settings.seed, seed])
    resign = ResignCounts()
    records = play_pipelined(
        ctx.game,
        selfplay_config(ctx.settings, simulations),
        pipeline(ctx),
        ctx.settings.games_per_job,
        rng,
        games_in_flight=ctx.settings.games_in_flight,
        on_step=on_step,
        resign=resign,
    )
    # The folder may have gone away while the games were played (an unmounted storage root).
    marker.require(ctx.redis, run, ctx.run_dir, role=f"self-play job {job_id}")
    shard = store_games(ctx, records, job_id, created)
    counters = {"jobs": 1, "leaf_evals": leaf_evals}
    if ctx.settings.resign_value > -1:
        counters.update(resigned=resign.resigned, resign_checked=resign.checked, false_resigns=resign.false)
    register_shard(ctx.redis, run, shard, counters)  # once: a shard registered before stays counted once
    ctx.games_since_weight_check += records.games
    searched = ctx.settings.num_simulations if simulations is None else simulations
    return _summary(records, resign, shard.name, leaf_evals, searched, started)


def _summary(
    records: GameRecords, resign: ResignCounts, shard: str, leaf_evals: int, simulations: int, started: float
) -> dict[str, Any]:
    """The job's JSON summary of its games."""
    versions = np.unique(records.weights_version)
    return {
        "shard": shard,
        "games": records.games,
        "positions": records.positions,
        "first_player_wins": int((records.results == 1).sum()),
        "draws": int((records.results == 0).sum()),
        "second_player_wins": int((records.results == -1).sum()),
        "weights_versions": [int(v) for v in versions],
        "policy_targets": int(records.policy_weight.sum()),
        "resigned": resign.resigned,
        "resign_checked": resign.checked,
        "false_resigns": resign.false,
        "leaf_evals": int(leaf_evals),
        "simulations": simulations,
        "seconds": round(time.monotonic() - started, 3),
    }


def _landed_before(ctx: context.WorkerContext, run: str, path: Path) -> dict[str, Any] | None:
    """The summary of this job's shard if an earlier run of the job landed it (registered now if it
    was not: the failure came between landing and registering); None if the job must play."""
    if not path.exists():
        return None
    try:
        info = read_shard_info(path)
    except ShardError:
        return None  # unreadable: the trainer sets it aside; playing again is the way to get the games
    registered_now = register_shard(ctx.redis, run, info, {"jobs": 1})
    return {
        "shard": info.name,
        "games": info.games,
        "positions": info.positions,
        "landed_before": True,
        "registered_now": registered_now,
    }


def store_games(ctx: context.WorkerContext, records: GameRecords, job_id: str, created: float) -> ShardInfo:
    """Write the games as the job's shard; while the disk is full, keep them in memory and try again
    every FULL_DISK_RETRY_S seconds (as the trainer does with its checkpoints), saying so once."""
    said = False
    while True:
        try:
            return write_shard(
                ctx.run_dir / REPLAY_DIR,
                records,
                game=ctx.game.name,
                job_id=job_id,
                worker=ctx.worker_name,
                planes_shape=ctx.game.planes_shape,
                num_actions=ctx.game.num_actions,
                created=created,
            )
        except StorageFullError as e:
            if not said:
                print(f"worker {ctx.worker_name}: {e}; keeping {records.games} games in memory until then", flush=True)
                said = True
            time.sleep(FULL_DISK_RETRY_S)


def pipeline(ctx: context.WorkerContext) -> AsyncEvaluator:
    """The worker's evaluator with requests in flight: the inference client is one; an in-process
    network evaluates each request when its reply is asked for."""
    evaluator = ctx.evaluator
    if isinstance(evaluator, AsyncEvaluator):
        return evaluator
    return SyncEvaluator(evaluator.evaluate, ctx.game.planes_shape, lambda: evaluator.last_version)


def maybe_sync_weights(ctx: context.WorkerContext) -> None:
    """An in-process evaluator checks for newer weights every `weight_sync_interval` games."""
    sync = getattr(ctx.evaluator, "sync", None)
    if sync is None or ctx.games_since_weight_check < ctx.settings.weight_sync_interval:
        return
    sync()
    ctx.games_since_weight_check = 0
