"""Jobs left `started` by a worker that died (SIGKILL, power loss): retried or failed through RQ's own cleanup.

RQ's SimpleWorker does not refresh a job's lease while it runs it, so RQ alone would notice such a
job only when its whole timeout (hours) has passed. The run's worker heartbeats say within seconds
that the worker is gone; the job is then handed to RQ's cleanup as expired, which retries it while it
has retries left and otherwise moves it to the failed registry (AbandonedJobError). Whether a worker
beats is the existence of its `alive` key (Redis' clock): no host's clock is compared with another's.
"""

from __future__ import annotations

from typing import Callable

import redis
from rq import Queue
from rq.worker import BaseWorker

from azjobs import keys
from azjobs.cluster import heartbeat

EXPIRED_SCORE = 1  # a lease that ran out in 1970: RQ's cleanup takes every entry scored at most this


def worker_alive(client: redis.Redis, run: str, worker_name: str) -> bool:
    """Whether the worker beats: by its azjobs heartbeat, else by RQ's own registration."""
    if heartbeat.is_alive(client, run, "worker", worker_name):
        return True
    if client.exists(keys.heartbeat(run, "worker", worker_name)):
        return False  # an `azjobs worker` whose alive key expired: silent for DEAD_AFTER_S by Redis' clock
    # Not an `azjobs worker` (e.g. a plain `rq worker`): its RQ key expires some minutes after it dies.
    return bool(client.exists(BaseWorker.redis_worker_namespace_prefix + worker_name))


def reap(
    client: redis.Redis, run: str, queue: Queue, log: Callable[[str], None] = print, *, dead: str | None = None
) -> list[str]:
    """Hand the queue's jobs whose worker is dead (or is the worker named `dead`) to RQ's cleanup; their ids."""
    registry = queue.started_job_registry
    abandoned: dict[str, str] = {}  # registry entry -> job id
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        job = queue.fetch_job(job_id)
        if job is None or not job.worker_name:
            continue
        if job.worker_name != dead and worker_alive(client, run, job.worker_name):
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
