"""The self-play job: play `games_per_job` games, `games_in_flight` at a time, store them as one replay shard.

The games in flight form two groups whose requests alternate (`play_pipelined`): while one group's
leaves are at the inference server, the worker searches the other.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rq import get_current_job

from azjobs import keys
from azjobs.jobs import context
from azjobs.search.selfplay import AsyncEvaluator, ResignCounts, SyncEvaluator, play_pipelined
from azjobs.storage.replay import register_shard
from azjobs.storage.shards import write_shard


def selfplay(run: str, seed: int) -> dict[str, Any]:
    """RQ job (queue `azjobs:<run>:selfplay`): returns a JSON summary of the games played."""
    ctx = context.current(run)
    job = get_current_job()
    job_id = job.id if job is not None else f"local-{seed}"
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
    records = play_pipelined(ctx.game, ctx.settings, pipeline(ctx), ctx.settings.games_per_job, rng,
                             games_in_flight=ctx.settings.games_in_flight, on_step=on_step, resign=resign)
    shard = write_shard(
        ctx.run_dir / "replay",
        records,
        game=ctx.game.name,
        job_id=job_id,
        worker=ctx.worker_name,
        planes_shape=ctx.game.planes_shape,
        num_actions=ctx.game.num_actions,
    )
    register_shard(ctx.redis, run, shard)
    ctx.games_since_weight_check += records.games
    pipe = ctx.redis.pipeline()
    pipe.hincrby(keys.stats(run), "jobs", 1)
    pipe.hincrby(keys.stats(run), "leaf_evals", leaf_evals)
    if ctx.settings.resign_value > -1:
        pipe.hincrby(keys.stats(run), "resigned", resign.resigned)
        pipe.hincrby(keys.stats(run), "resign_checked", resign.checked)
        pipe.hincrby(keys.stats(run), "false_resigns", resign.false)
    pipe.execute()
    versions = np.unique(records.weights_version)
    return {
        "shard": shard.name,
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
        "seconds": round(time.monotonic() - started, 3),
    }


def pipeline(ctx: context.WorkerContext) -> AsyncEvaluator:
    """The worker's evaluator with requests in flight: the inference client is one; an in-process
    network evaluates each request when its reply is asked for."""
    evaluator = ctx.evaluator
    if hasattr(evaluator, "submit_buffer"):
        return evaluator  # type: ignore[return-value]
    return SyncEvaluator(evaluator.evaluate, ctx.game.planes_shape, lambda: evaluator.last_version)


def maybe_sync_weights(ctx: context.WorkerContext) -> None:
    """An in-process evaluator checks for newer weights every `weight_sync_interval` games."""
    sync = getattr(ctx.evaluator, "sync", None)
    if sync is None or ctx.games_since_weight_check < ctx.settings.weight_sync_interval:
        return
    sync()
    ctx.games_since_weight_check = 0
