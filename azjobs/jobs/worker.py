"""`azjobs worker`: an RQ worker on the run's queues that keeps its evaluator between jobs.

It is an RQ `SimpleWorker` (jobs run in-process, no fork per job), so the inference
client or the in-process network is built once, when the worker starts.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.connection import MAX_BLOCK_S, Outage, is_outage, wait_for
from azjobs.games import get_game
from azjobs.inference.client import InferenceClient
from azjobs.inference.local import LocalEvaluator
from azjobs.jobs import context, reaper
from azjobs.run import Run
from azjobs.settings import Settings
from azjobs.storage import marker
from azjobs.storage.sweep import sweep_temps
from azjobs.storage.weights import WeightStore

EVALUATORS = ("remote", "local")
MAINTENANCE_EVERY_S = 10  # between jobs, at most this often: RQ's registry cleaning and the reaper
# RQ blocks in BLPOP for worker_ttl - 15 s between jobs: kept within MAX_BLOCK_S, so the socket timeout
# (longer) tells a silent Redis from an idle queue.
WORKER_TTL_S = int(MAX_BLOCK_S) + 15


# The only functions a worker runs: RQ would import whatever a job names, so anyone able to write to
# the run's Redis could run code on every worker. Anything else fails, unimported, in the failed registry.
JOB_FUNCTIONS = frozenset(
    {
        "azjobs.jobs.selfplay.selfplay",
        "azjobs.jobs.evaluate.match",
        "azjobs.jobs.evaluate.accuracy",
        "azjobs.jobs.evaluate.gate",
    }
)


class RefusedJob(Exception):
    """A job naming a function (or callback, or webhook) that azjobs does not run."""


class AzjobsJob(Job):
    """An RQ job that resolves its function only from `allowed`, and never imports a callback or calls a webhook."""

    allowed: frozenset[str] = JOB_FUNCTIONS
    _extras: tuple[str, ...] = ()

    def restore(self, raw_data: dict[bytes, bytes]) -> None:
        super().restore(raw_data)
        # azjobs enqueues no callbacks and no webhooks: a job that names one was not enqueued by azjobs.
        names = {
            "on_success": self._success_callback_name,
            "on_failure": self._failure_callback_name,
            "on_stopped": self._stopped_callback_name,
            "webhooks": self.webhooks,
        }
        self._extras = tuple(k for k, v in names.items() if v)
        self._success_callback_name = self._failure_callback_name = self._stopped_callback_name = None
        self.webhooks = []

    @property
    def func(self) -> Callable[..., Any]:
        name, why = self.func_name, ""
        if not isinstance(name, str) or name not in self.allowed:
            why = "it is not one of azjobs' job functions"
        elif self.instance is not None:
            why = "it names an instance to call it on"
        elif self._extras:
            why = f"it names {' and '.join(self._extras)}, which azjobs never enqueues"
        if why:
            self.retries_left = 0  # a refusal is final: retrying cannot make the job acceptable
            raise RefusedJob(
                f"refused job {self.id}: function {name!r} was not imported or run, because {why} "
                f"({', '.join(sorted(self.allowed))}); only azjobs' trainer and CLI enqueue on a run's queues"
            )
        return super().func


def allowing(functions: frozenset[str]) -> type[AzjobsJob]:
    """An `AzjobsJob` class that also runs `functions` (tests add their own jobs this way)."""
    return type("AzjobsJob", (AzjobsJob,), {"allowed": JOB_FUNCTIONS | functions})


class RunWorker(SimpleWorker):
    """A SimpleWorker that, in its maintenance between jobs, also hands back the jobs of dead workers,
    and that notes when it quit because of an outage of Redis (gone, silent, out of memory, read-only:
    RQ quits its loop then), so it can be restarted."""

    run_name = ""
    say: Callable[[str], None] = print
    lost_redis = False

    def _note(self, e: redis.RedisError) -> None:
        if is_outage(e):
            self.lost_redis = True

    def execute_job(self, job: Job, queue: Queue) -> None:
        progress = context.progress_of(self.run_name)
        if progress is not None:  # for the heartbeat: what it runs now, and how many it ran
            progress.job = f"{str(job.func_name).rsplit('.', 1)[-1]} {job.id}"
        try:
            super().execute_job(job, queue)
        except redis.RedisError as e:
            self._note(e)
            raise
        finally:
            if progress is not None:
                progress.job, progress.jobs_done = "", progress.jobs_done + 1

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        try:  # RQ retries a lost connection here itself, but not a refused write (its heartbeat)
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except redis.RedisError as e:
            self._note(e)
            raise

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except redis.RedisError as e:
            self._note(e)
            raise

    def teardown(self) -> None:
        try:
            super().teardown()
        except redis.RedisError as e:
            if not is_outage(e):
                raise
            self.lost_redis = True

    @property
    def stopping(self) -> bool:
        """A SIGTERM or SIGINT asked it to stop."""
        return bool(getattr(self, "_stop_requested", False))

    def clean_registries(self) -> None:
        for queue in self.queues:
            # RQ's own lock: one worker at a time reaps a queue, so no job is retried twice.
            if queue.acquire_maintenance_lock():
                try:
                    reaper.reap(self.connection, self.run_name, queue, self.say)
                finally:
                    queue.release_maintenance_lock()
        super().clean_registries()


class SyncingLocalEvaluator:
    """The network in the worker's own process; `sync()` swaps in newer published weights."""

    def __init__(self, store: WeightStore, game_name: str, say: Callable[[str], None]) -> None:
        self.store = store
        self.game = get_game(game_name)
        self.say = say
        latest = store.latest()
        if latest is None:
            raise RuntimeError("no weights published yet")
        version, data = latest
        self.local = LocalEvaluator.from_bytes(self.game, data)
        self.last_version = version

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.local.evaluate(planes)

    def sync(self) -> None:
        newest = self.store.latest_version()
        if newest is not None and newest > self.last_version:
            self.local.load(self.store.load(newest))
            self.last_version = newest
            self.say(f"worker: weights version {newest} loaded")


def make_evaluator(kind: str, run: Run, settings: Settings, say: Callable[[str], None]) -> context.Evaluator:
    if kind == "remote":
        return InferenceClient(run.redis, run.name, planes_shape=get_game(settings.game).planes_shape)
    assert run.folder is not None, "a worker works on the run's folder"
    store = WeightStore(run.redis, run.name, run.folder, keep_in_redis=settings.weights_kept_in_redis)
    wait_for_weights(store, say)
    return SyncingLocalEvaluator(store, settings.game, say)


def wait_for_weights(store: WeightStore, say: Callable[[str], None], poll_s: float = 1.0) -> None:
    wait_for(
        lambda: store.latest_version() is not None,
        say,
        "waiting for the first weights version (the trainer publishes it)",
        poll_s=poll_s,
    )


def run(
    settings: Settings,
    run: Run,
    *,
    evaluator: str = "remote",
    name: str | None = None,
    burst: bool = False,
    max_jobs: int | None = None,
    say: Callable[[str], None] = print,
    job_class: type[AzjobsJob] = AzjobsJob,
) -> None:
    """Take the run's evaluation and self-play jobs until stopped (SIGTERM: finish the job, then stop).

    Only the functions `job_class` allows run (JOB_FUNCTIONS); any other job fails unimported."""
    assert run.folder is not None, "a worker works on the run's folder"
    client, run_dir = run.redis, run.folder
    name = name or f"{run.name}.{heartbeat.process_id()}"
    # A worker that cannot see the run's folder would write games nobody can read: refuse at once.
    marker.require(client, run.name, run_dir, role=f"worker {name}", say=say)
    sweep_temps(run_dir, say)
    ctx = context.WorkerContext(
        redis=client,
        run=run.name,
        run_dir=run_dir,
        settings=settings,
        game=get_game(settings.game),
        evaluator=make_evaluator(evaluator, run, settings, say),
        worker_name=name,
    )
    context.install(ctx)
    # Evaluation jobs first: they are few and someone is waiting for their results.
    names = [keys.eval_queue(run.name), keys.selfplay_queue(run.name)]
    queues = [Queue(n, connection=client, serializer=JSONSerializer, job_class=job_class) for n in names]
    beats = _HeartbeatThread(client, run.name, name, evaluator, ctx.progress)
    beats.start()
    say(f"worker {name}: taking jobs from {', '.join(names)} (evaluator: {evaluator})")
    try:
        _work(client, run.name, name, queues, say, job_class, burst=burst, max_jobs=max_jobs)
    finally:
        beats.stop.set()
        beats.join(timeout=5)
        beats.beat()  # the final counters
        close = getattr(ctx.evaluator, "close", None)
        if close is not None:
            close()
        say(f"worker {name}: stopped")


def _work(
    client: redis.Redis,
    run: str,
    name: str,
    queues: list[Queue],
    say: Callable[[str], None],
    job_class: type[AzjobsJob],
    *,
    burst: bool,
    max_jobs: int | None,
) -> None:
    """RQ's work loop, started again each time Redis comes back after an outage; until stopped."""
    outage = Outage(
        say,
        f"worker {name}: Redis is back; taking jobs again",
        lost=f"worker {name}: lost Redis (gone, or refusing writes); taking jobs again once it is back",
    )
    while True:
        worker = RunWorker(
            queues,
            connection=client,
            serializer=JSONSerializer,
            name=name,
            job_class=job_class,
            maintenance_interval=MAINTENANCE_EVERY_S,
            worker_ttl=WORKER_TTL_S,
        )
        worker.run_name, worker.say = run, say
        try:
            worker.work(burst=burst, max_jobs=max_jobs, logging_level="WARNING")
        except redis.RedisError as e:  # refused while RQ registers the worker, before its loop
            if not is_outage(e):
                raise
            worker.lost_redis = True
        if not worker.lost_redis or worker.stopping:
            return
        outage.lost("worker")
        if not _wait_for_redis(client, worker):
            return
        # The job it was running when Redis went away is nobody's now: RQ retries or fails it.
        for queue in queues:
            reaper.reap(client, run, queue, say, dead=name)
        outage.passed("worker")


def _wait_for_redis(client: redis.Redis, worker: RunWorker, poll_s: float = 1.0) -> bool:
    """Try every second until Redis takes a write (True) or a signal asks the worker to stop (False)."""
    while not worker.stopping:
        try:  # a write, as a PING passes while Redis is out of memory or read-only; and the RQ worker of
            # that name is marked dead, so that the next one may register (its own teardown could not)
            worker.register_death()
            return True
        except redis.RedisError as e:
            if not is_outage(e):
                raise
            threading.Event().wait(poll_s)
    return False


class _HeartbeatThread(threading.Thread):
    """Beats while the worker is busy in a long job, so status never calls a busy worker dead."""

    def __init__(self, client: redis.Redis, run: str, name: str, evaluator: str, progress: context.Progress) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.client, self.run_name, self.worker_name, self.evaluator = client, run, name, evaluator
        self.progress = progress
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.beat()
            self.stop.wait(heartbeat.INTERVAL_S)

    def beat(self) -> None:
        fields = {
            "evaluator": self.evaluator,
            "positions": self.progress.positions,
            "leaf_evals": self.progress.leaf_evals,
            "jobs_done": self.progress.jobs_done,
            "job": self.progress.job,
            "cpu_s": round(time.process_time(), 4),
        }
        try:
            heartbeat.beat(self.client, self.run_name, "worker", self.worker_name, fields)
        except redis.RedisError:
            pass  # Redis away for a moment: the next beat tries again
