"""The inference server (`azjobs gpu-serve`): drains the run's request list in batches, one forward pass each,
with the CPU's work on one batch overlapped with the network's on another.

Two threads pass batches along through queues. The collector blocks on the request list and pops whole
requests (several per LPOP) until the batch holds `inference_batch_size` positions or `inference_wait_ms` has
passed, decoding each straight into a free one of the runner's batch buffers (pinned memory on CUDA); a request
that would overflow the batch waits at the head of the next one. The forward thread (the caller's) runs the
network on each filled buffer in turn, waiting on an event rather than spinning, hot-swaps to the newest
published weights between batches (never mid-batch), and pushes each batch's replies in one write without
waiting for Redis (the acknowledgements are read with the next batch's). A runner that computes
asynchronously (CUDA) starts the next batch before the last one's replies are pushed when the next is already
collected, so the pushes overlap its pass. So while a batch runs, the next is collected and the last one's
replies go out, with one hand-off between threads per batch. The collector and the pushes each have their own
Redis connection. A malformed request is logged, counted and dropped; a stale one (stamped more than
REQUEST_TTL_S ago on Redis' clock: its sender is gone) is counted and dropped unserved; several servers may
drain the same list; on stop, requests popped but not run go back to the head of the list. Its heartbeat
carries batch fill, forward time, the time spent gathering a batch, the time requests waited in the list and
how long the forward thread waited for work (`azjobs status` shows them). The collector thread is
`azjobs.inference.collector`; what the threads share (runner protocols, batches, figures) `azjobs.inference.batch`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Callable

import redis as redis_lib
import torch
from redis import Redis

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.connection import Outage, is_outage, wait_for
from azjobs.errors import AzjobsError
from azjobs.games import get_game
from azjobs.inference.batch import AsyncRunner, Batch, Runner, Window
from azjobs.inference.channel import ListChannel
from azjobs.inference.collector import HANDOFF_WAIT_S, Collector
from azjobs.inference.local import default_device
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net.weights import model_from_bytes
from azjobs.run import Run
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.wire import REQUEST_TTL_S, batch_reply_parts

__all__ = ["ROLE", "SLOTS", "REPLY_TTL_S", "AsyncRunner", "Runner", "batch_capacity", "run", "serve"]

ROLE = "gpu-serve"
SLOTS = 3  # batch buffers: one being filled, one in the forward pass, one whose replies wait for the next pass
VERSION_CHECK_S = 0.5  # how often the newest weights version is looked up
REPLY_TTL_S = 300  # a reply list nobody reads (its client died) expires after this; set with every push
WAIT_POLL_S = 1.0  # poll interval while no weights exist yet
SETTLE_S = 0.05  # longest the acknowledgements of reply pushes go unread while batches keep coming
SETTLE_AFTER = 512  # ... or this many of them (a bound on what waits in the socket)
JOIN_S = 10.0  # longest wait for the collector to finish when stopping
REPLY_KEYS_MAX = 4096  # reply list names kept (one per client); forgotten all at once past this


class _Server:
    """The forward thread's state (the caller's): the runner, the collector that fills its buffers, the batch
    whose replies wait to go out, and the figures its heartbeats carry."""

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        run: str,
        store: WeightStore,
        runner: Runner,
        log: Callable[[str], None],
        name: str,
    ) -> None:
        self.settings, self.client, self.run, self.store = settings, client, run, store
        self.runner, self.log, self.name = runner, log, name
        self.batch_size = settings.inference_batch_size
        self.requests_key = keys.requests(run)
        self.outage = Outage(log, "Redis is back; serving again")  # said once for all its threads
        planes_shape = get_game(settings.game).planes_shape
        self.collector = Collector(
            settings, client, self.requests_key, runner.buffers, planes_shape, self.outage, log, ROLE
        )
        self.send_channel = ListChannel(client)  # the forward thread's own connection, for the replies
        self.reply_keys: dict[str, str] = {}  # client id -> its reply list
        self.unsent: Batch | None = None  # run, its replies pushed after the next batch is launched
        self.settled = 0.0  # when the pushes' acknowledgements were last read (time.monotonic)
        self.asynchronous = bool(getattr(runner, "asynchronous", False))
        self.batches = self.positions = self.requests = 0
        self.forward_s = self.forward_cpu_s = 0.0
        self.window = Window()
        self.means: dict[str, float] = {}  # batch fill, forward, gather and queue wait of the last busy window
        self.last_beat = self.last_version_check = 0.0
        self.failed_version = -1  # a version that would not load, so it is reported once

    def step(self) -> None:
        """Run one collected batch if one comes within HANDOFF_WAIT_S; swap weights and beat when due."""
        if self.collector.failure is not None:
            raise self.collector.failure
        if self.unsent is not None and self.collector.ready.empty():
            self.send_unsent()  # no next pass to start first
        started = time.monotonic()
        batch = self.next_batch()
        now = time.monotonic()
        self.window.idle_s += now - started
        if batch is not None:
            self.forward(batch)
            now = time.monotonic()
        if now - self.last_version_check >= VERSION_CHECK_S:
            self.last_version_check = now
            self.maybe_swap()
        if now - self.last_beat >= heartbeat.INTERVAL_S:
            self.beat()

    def next_batch(self) -> Batch | None:
        """The next collected batch if one comes within HANDOFF_WAIT_S; if none does, the acknowledgements of
        the pushes so far are read."""
        try:
            return self.collector.ready.get(timeout=HANDOFF_WAIT_S)
        except queue.Empty:
            self.settle()
            return None

    def settle(self) -> None:
        """Read the acknowledgements of the pushes so far (while idle); a refusal among them is an outage."""
        if not self.send_channel.unread:
            return
        try:
            self.send_channel.settle()
            refused = self.send_channel.take_errors()
            if refused:
                raise refused[0]
        except redis_lib.RedisError as e:
            if not is_outage(e):
                raise
            self.outage.lost("sender", e)
            return
        self.settled = time.monotonic()
        self.outage.passed("sender")

    def forward(self, batch: Batch) -> None:
        """One forward pass over the batch's buffer; then its replies go out (an asynchronous runner's: after
        the next pass has started, if the next batch is already collected)."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        if self.asynchronous:
            runner: AsyncRunner = self.runner  # type: ignore[assignment]
            runner.launch(batch.positions, batch.slot)
            sending = time.thread_time()
            self.send_unsent()  # while the pass runs
            cpu_started += time.thread_time() - sending  # the pass's CPU, not the pushes'
            batch.logits, batch.values = runner.outputs(batch.positions, batch.slot)  # [n, A], [n]
        else:
            batch.logits, batch.values = self.runner.forward(batch.positions, batch.slot)
        forward_s = time.perf_counter() - started
        self.forward_cpu_s += time.thread_time() - cpu_started
        batch.version = self.runner.version
        self.forward_s += forward_s
        self.batches += 1
        self.positions += batch.positions
        self.requests += len(batch.requests)
        w = self.window
        w.batches += 1
        w.positions += batch.positions
        w.requests += len(batch.requests)
        w.forward_s += forward_s
        self.unsent = batch
        if not self.asynchronous:
            self.send_unsent()

    def send_unsent(self) -> None:
        """Push the replies of the batch run last, if any, and free its buffer; an outage loses them (their
        clients resend) and is said once."""
        batch, self.unsent = self.unsent, None
        if batch is None:
            return
        try:
            settled = self.send(batch)
        except redis_lib.RedisError as e:
            if not is_outage(e):
                raise
            self.outage.lost("sender", e)
            return
        finally:
            self.collector.free.put(batch.slot)
        if settled:  # Redis took every push so far (it may refuse the ones not yet acknowledged)
            self.outage.passed("sender")

    def send(self, batch: Batch) -> bool:
        """Each sender gets the rows of its own request; one write for the batch, not waited on. Whether the
        acknowledgements of the pushes before it were read (a refusal among them is raised)."""
        started = time.monotonic()
        assert batch.logits is not None and batch.values is not None
        requests = batch.requests
        parts = batch_reply_parts(
            [r.request_id for r in requests], [r.positions for r in requests], batch.version, batch.logits, batch.values
        )
        reply_keys = self.reply_keys
        replies = [
            (reply_keys.get(r.client_id) or self.reply_key(r.client_id), reply) for r, reply in zip(requests, parts)
        ]
        # The acknowledgements of earlier pushes, come long since, are read now and then: pushing never waits on
        # Redis, and a refusal (OOM, read-only) is seen within SETTLE_S.
        settling = started - self.settled >= SETTLE_S or self.send_channel.unread >= SETTLE_AFTER
        if settling:
            self.send_channel.settle()
            self.settled = started
        refused = self.send_channel.take_errors()
        # EXPIRE with every push: a drained list is deleted, and the next push would create it without expiry.
        self.send_channel.push_many(replies, dict.fromkeys([key for key, _ in replies], REPLY_TTL_S), wait=False)
        self.window.send_s += time.monotonic() - started
        if refused:  # earlier pushes that Redis refused (OOM, read-only): their clients resend
            raise refused[0]
        return settling

    def reply_key(self, client_id: str) -> str:
        """The name of the client's reply list, kept (it goes with every reply)."""
        if len(self.reply_keys) >= REPLY_KEYS_MAX:
            self.reply_keys.clear()
        key = self.reply_keys[client_id] = keys.reply(self.run, client_id)
        return key

    def start(self) -> None:
        self.collector.thread.start()

    def finish(self) -> None:
        """Stop collecting, give back what was popped but not run, and push the replies of what was run."""
        self.collector.halt.set()
        self.collector.thread.join(timeout=JOIN_S)
        with contextlib.suppress(redis_lib.RedisError):  # if Redis is gone, clients resend them
            self.collector.give_back()
        try:
            self.send_unsent()
            self.send_channel.settle()  # the last pushes processed before the connection goes
        except redis_lib.RedisError:  # lost replies are resent for by their clients
            pass
        finally:
            self.send_channel.close()

    def maybe_swap(self) -> None:
        """Load the newest published weights if they are newer than those served (between batches)."""
        raw = self.client.get(keys.weights_latest(self.run))
        latest = int(raw) if raw is not None else self.store.latest_version()
        if latest is None or latest <= self.runner.version or latest == self.failed_version:
            return
        try:
            self.runner.load(self.store.load(latest), version=latest)
        except (AzjobsError, OSError, KeyError, ValueError, RuntimeError) as e:
            self.failed_version = latest
            self.log(f"cannot load weights version {latest}, still serving {self.runner.version}: {e}")
            return
        self.log(f"now serving weights version {latest}")

    def beat(self) -> None:
        w, now, c = self.window, time.monotonic(), self.collector
        elapsed = max(now - w.started, 1e-9)
        gather_s, queue_wait_s, stale = c.gather_s - w.collected[0], c.queue_wait_s - w.collected[1], c.stale
        if w.batches:  # the means of an idle window are those of the last busy one
            self.means = {
                "batch_fill": round(w.positions / w.batches / self.batch_size, 3),
                "forward_ms": round(1000 * w.forward_s / w.batches, 3),
                "wait_ms": round(1000 * gather_s / w.batches, 3),
                "queue_wait_ms": round(1000 * queue_wait_s / max(w.requests, 1), 3),
                "idle_ms": round(1000 * w.idle_s / w.batches, 3),
                "send_ms": round(1000 * w.send_s / w.batches, 3),
            }
        heartbeat.beat(self.client, self.run, ROLE, self.name, self.beat_fields(w, elapsed))
        if stale > w.collected[2]:
            self.log(
                f"dropped {stale - w.collected[2]} stale requests (stamped over {REQUEST_TTL_S:g} s ago: their "
                f"senders are gone); {stale} so far"
            )
        self.last_beat, self.window = now, Window(collected=(c.gather_s, c.queue_wait_s, stale))

    def beat_fields(self, w: Window, elapsed: float) -> dict[str, object]:
        choice = getattr(self.runner, "choice", None)
        return {
            "device": str(self.runner.device),
            "precision": choice.describe() if choice is not None else "",
            "weights_version": self.runner.version,
            "batch_size": self.batch_size,
            "inference_wait_ms": self.settings.inference_wait_ms,  # with batch_size: this process's own, if given
            "batches": self.batches,
            "positions": self.positions,
            "requests": self.requests,
            "dropped": self.collector.dropped,
            "stale": self.collector.stale,
            "evals_per_s": round(w.positions / elapsed, 1),
            "batches_per_s": round(w.batches / elapsed, 2),
            "forward_busy": round(min(1.0, w.forward_s / elapsed), 3),
            **self.means,
            "forward_s": round(self.forward_s, 4),
            "forward_cpu_s": round(self.forward_cpu_s, 4),
            "cpu_s": round(time.process_time(), 4),
            "backlog": self.client.llen(self.requests_key),
        }


def wait_for_weights(
    store: WeightStore, client: Redis, run: str, stop: threading.Event, log: Callable[[str], None]
) -> tuple[int, bytes] | None:
    """The newest weights once any exist, saying once that it waits; None if stopped first."""
    beat = {"weights_version": "none"}
    return wait_for(
        store.latest,
        log,
        f"waiting for the first weights of run {run!r} (the trainer publishes them)",
        poll_s=WAIT_POLL_S,
        stop=stop,
        between=lambda: heartbeat.beat(client, run, ROLE, heartbeat.process_id(), beat),
    )


def run(
    settings: Settings,
    run: Run,
    *,
    device: str | None = None,
    options: RunnerOptions = RunnerOptions(),
    stop: threading.Event | None = None,
    max_batches: int | None = None,
    log: Callable[[str], None] = print,
    name: str | None = None,
) -> None:
    """Serve the run's inference requests until `stop` is set (or `max_batches` batches are served)."""
    game = get_game(settings.game)
    stop = stop or threading.Event()
    device = device or default_device()
    assert run.folder is not None, "gpu-serve reads the run's weights from its folder"
    store = WeightStore(run.redis, run.name, run.folder, keep_in_redis=settings.weights_kept_in_redis)
    found = wait_for_weights(store, run.redis, run.name, stop, log)
    if found is None:
        return
    version, data = found
    model, _ = model_from_bytes(game, data)
    if torch.device(device).type == "cuda":
        log(f"device {device}: {torch.cuda.get_device_name(torch.device(device))}")
    runner = NetRunner(
        model,
        device,
        settings.inference_batch_size,
        batch_capacity(settings),
        options,
        version=version,
        slots=SLOTS,
        log=log,
    )
    log(f"serving run {run.name!r} on {device} with weights version {version}")
    serve(settings, run.redis, run.name, store, runner, stop=stop, max_batches=max_batches, log=log, name=name)


def batch_capacity(settings: Settings) -> int:
    """Rows of the batch buffer: a batch, or one request bigger than a batch (served alone)."""
    return max(settings.inference_batch_size, settings.max_request_positions)


def serve(
    settings: Settings,
    client: Redis,
    run: str,
    store: WeightStore,
    runner: Runner,
    *,
    stop: threading.Event,
    max_batches: int | None = None,
    log: Callable[[str], None] = print,
    name: str | None = None,
) -> None:
    """The serving loop with a runner of the caller's (`azjobs bench transport` gives a null one)."""
    server = _Server(settings, client, run, store, runner, log, name or heartbeat.process_id())
    server.start()
    try:
        _loop(server, stop, max_batches)
    finally:
        server.finish()
        with contextlib.suppress(redis_lib.RedisError):  # the last figures, if Redis is still there
            server.beat()
        log(
            f"stopped after {server.batches} batches, {server.positions} positions, {server.collector.dropped} "
            f"dropped, {server.collector.stale} stale"
        )


def _loop(server: _Server, stop: threading.Event, max_batches: int | None) -> None:
    """Serve until stopped; an outage of Redis (lost, silent, out of memory, read-only) is waited out,
    said once (clients resend what was lost)."""
    while not stop.is_set() and (max_batches is None or server.batches < max_batches):
        try:
            server.step()
        except redis_lib.RedisError as e:
            if not is_outage(e):
                raise
            server.outage.lost("forward", e)
            stop.wait(1.0)
            continue
        server.outage.passed("forward")
