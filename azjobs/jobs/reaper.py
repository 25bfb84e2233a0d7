"""Jobs left `started` by a worker that died (SIGKILL, power loss): retried or failed through RQ's own cleanup.

RQ's SimpleWorker does not refresh a job's lease while it runs it, so RQ alone would notice such a
job only when its whole timeout (hours) has passed. The run's worker heartbeats say within seconds
that the worker is gone; the job is then handed to RQ's cleanup as expired, which retries it while it
has retries left and otherwise moves it to the failed registry (AbandonedJobError).
"""

from __future__ import annotations

import time
from typing import Callable

import redis
from rq import Queue
from rq.worker import BaseWorker

from azjobs import heartbeat, keys

EXPIRED_SCORE = 1  # a lease that ran out in 1970: RQ's cleanup takes every entry scored at most this


def worker_alive(client: redis.Redis, run: str, worker_name: str, now: float | None = None) -> bool:
    """Whether the worker beats: by its azjobs heartbeat, else by RQ's own registration."""
    now = time.time() if now is None else now
    beat = client.hget(keys.heartbeat(run, "worker", worker_name), "time")
    if beat is not None:
        return now - float(beat) < heartbeat.DEAD_AFTER_S
    # Not an `azjobs worker` (e.g. a plain `rq worker`): its RQ key expires some minutes after it dies.
    return bool(client.exists(BaseWorker.redis_worker_namespace_prefix + worker_name))


def reap(
    client: redis.Redis, run: str, queue: Queue, log: Callable[[str], None] = print, *, dead: str | None = None
) -> list[str]:
    """Hand the queue's jobs whose worker is dead (or is the worker named `dead`) to RQ's cleanup; their ids."""
    registry = queue.started_job_registry
    now = time.time()
    abandoned: dict[str, str] = {}  # registry entry -> job id
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        job = queue.fetch_job(job_id)
        if job is None or not job.worker_name:
            continue
        if job.worker_name != dead and worker_alive(client, run, job.worker_name, now):
            continue
        abandoned[f"{job_id}:{execution_id}"] = job_id
    if not abandoned:
        return []
    # XX: only entries still there (the worker may have finished the job meanwhile after all).
    client.zadd(registry.key, {entry: EXPIRED_SCORE for entry in abandoned}, xx=True)
    registry.cleanup(timestamp=EXPIRED_SCORE)
    ids = sorted(set(abandoned.values()))
    log(f"jobs of dead workers handed back to RQ (retried, or failed when out of retries): {', '.join(ids)}")
    return ids
