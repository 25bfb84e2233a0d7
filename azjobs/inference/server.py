"""The inference server (`azjobs gpu-serve`): drains the run's request list in batches, one forward pass each,
with the CPU's work on one batch overlapped with the network's on another.

Three threads pass batches along through queues. The collector blocks on the request list and pops whole
requests (several per LPOP) until the batch holds `inference_batch_size` positions or `inference_wait_ms` has
passed, decoding each straight into a free one of the runner's batch buffers (pinned memory on CUDA); a request
that would overflow the batch waits at the head of the next one. The forward thread (the caller's) runs the
network on each filled buffer in turn, waiting on an event rather than spinning, and hot-swaps to the newest
published weights between batches (never mid-batch). The sender encodes each batch's replies and pushes them,
one pipelined round trip per batch. So while a batch runs, the next is collected and the last one's replies go
out. The collector and the sender each have their own Redis connection. A malformed request is logged, counted
and dropped; a stale one (stamped more than REQUEST_TTL_S ago on Redis' clock: its sender is gone) is counted
and dropped unserved; several servers may drain the same list; on stop, requests popped but not run go back to
the head of the list. Its heartbeat carries batch fill, forward time, the time spent gathering a batch, the
time requests waited in the list and how long the forward thread waited for work (`azjobs status` shows them).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import redis as redis_lib
import torch
from redis import Redis

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.clock import RedisClock
from azjobs.cluster.connection import Outage, is_outage, wait_for
from azjobs.errors import AzjobsError
from azjobs.games import get_game
from azjobs.games.base import Game
from azjobs.inference.channel import ListChannel
from azjobs.inference.local import default_device
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net.weights import model_from_bytes
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.wire import REQUEST_TTL_S, Request, WireError, decode_request, reply_parts

ROLE = "gpu-serve"
SLOTS = 3  # batch buffers: one being filled, one in the forward pass, one whose replies are being sent
POP_TIMEOUT_S = 1.0  # longest block on an empty list, so `stop` is seen within a second
IDLE_POLL_S = 0.0002  # pause between non-blocking pops while a partial batch waits
HANDOFF_WAIT_S = 0.1  # longest wait for another thread's batch, so swaps, beats and stops are not held up
MAX_POP = 64  # most requests taken by one LPOP
VERSION_CHECK_S = 0.5  # how often the newest weights version is looked up
REPLY_TTL_S = 300  # a reply list nobody reads (its client died) expires after this; set with every push
WAIT_POLL_S = 1.0  # poll interval while no weights exist yet
JOIN_S = 10.0  # longest wait for the collector or the sender to finish when stopping


class Runner(Protocol):
    """What the server runs: `NetRunner`, or `NullRunner` when only transport is measured."""

    device: torch.device
    version: int
    buffers: list[np.ndarray]  # [max_batch, C, H, W] uint8 each: the batch buffers requests are decoded into

    def forward(self, n: int, slot: int) -> tuple[np.ndarray, np.ndarray]: ...

    def load(self, data: bytes, version: int) -> None: ...


@dataclass
class _Batch:
    """Whole requests decoded into one slot's buffer; after the forward pass, its outputs."""

    slot: int
    requests: list[Request] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)  # the messages, given back if the batch never runs
    positions: int = 0
    version: int = -1  # weights version of the outputs
    logits: np.ndarray | None = None  # [positions, A], a view of the slot's output buffer
    values: np.ndarray | None = None  # [positions]


@dataclass
class _Window:
    """Figures since the last heartbeat, for its means and rates."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    positions: int = 0
    requests: int = 0
    forward_s: float = 0.0
    gather_s: float = 0.0
    idle_s: float = 0.0  # the forward thread waiting for a collected batch
    send_s: float = 0.0
    queue_wait_s: float = 0.0  # summed over requests
    stale: int = 0  # requests dropped as stale


class _Server:
    """One server's state: the runner with its batch buffers, the batches between threads, and its figures."""

    def __init__(self, settings: Settings, client: Redis, run: str, store: WeightStore, runner: Runner,
                 game: Game, log: Callable[[str], None], name: str) -> None:
        self.settings, self.client, self.run, self.store = settings, client, run, store
        self.runner, self.game, self.log, self.name = runner, game, log, name
        self.batch_size = settings.inference_batch_size
        self.requests_key = keys.requests(run)
        self.collect_channel = ListChannel(client)  # each thread with Redis work has its own connection
        self.send_channel = ListChannel(client)
        self.clock = RedisClock(client)  # the clock requests are stamped on (the collector's alone)
        self.held: deque[tuple[Request, bytes]] = deque()  # popped, not yet in a batch: (request, message)
        self.filling: _Batch | None = None  # the collector's batch in progress
        self.request_positions = 1  # positions of the last request popped, for the next LPOP's count
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()  # slots whose buffers nobody uses
        for slot in range(len(runner.buffers)):
            self.free.put(slot)
        self.ready: queue.SimpleQueue[_Batch] = queue.SimpleQueue()  # collected, waiting for the forward thread
        self.done: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()  # run, waiting for the sender; None: finish
        self.halt = threading.Event()  # the collector stops; set when serving ends
        self.failure: BaseException | None = None  # an error of the collector or the sender, raised by serve
        self.outage = Outage(log, "Redis is back; serving again")  # said once for all its threads
        self.batches = self.positions = self.requests = self.dropped = self.stale = 0
        self.forward_s = self.forward_cpu_s = 0.0
        self.window = _Window()
        self.means: dict[str, float] = {}  # batch fill, forward, gather and queue wait of the last busy window
        self.last_beat = self.last_version_check = 0.0
        self.failed_version = -1  # a version that would not load, so it is reported once
        self.collector = threading.Thread(target=self.collect_loop, name=f"{ROLE}-collector", daemon=True)
        self.sender = threading.Thread(target=self.send_loop, name=f"{ROLE}-sender", daemon=True)

    # The forward thread (the caller's).

    def step(self) -> None:
        """Run one collected batch if one comes within HANDOFF_WAIT_S; swap weights and beat when due."""
        if self.failure is not None:
            raise self.failure
        started = time.monotonic()
        try:
            batch = self.ready.get(timeout=HANDOFF_WAIT_S)
        except queue.Empty:
            batch = None
        self.window.idle_s += time.monotonic() - started
        if batch is not None:
            self.forward(batch)
        now = time.monotonic()
        if now - self.last_version_check >= VERSION_CHECK_S:
            self.last_version_check = now
            self.maybe_swap()
        if now - self.last_beat >= heartbeat.INTERVAL_S:
            self.beat()

    def forward(self, batch: _Batch) -> None:
        """One forward pass over the batch's buffer; the outputs go on to the sender."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        batch.logits, batch.values = self.runner.forward(batch.positions, batch.slot)  # [n, A], [n]
        forward_s = time.perf_counter() - started
        self.forward_cpu_s += time.thread_time() - cpu_started
        batch.version = self.runner.version
        self.done.put(batch)
        self.forward_s += forward_s
        self.batches += 1
        self.positions += batch.positions
        self.requests += len(batch.requests)
        w = self.window
        w.batches, w.positions, w.requests, w.forward_s = w.batches + 1, w.positions + batch.positions, \
            w.requests + len(batch.requests), w.forward_s + forward_s

    def start(self) -> None:
        self.collector.start()
        self.sender.start()

    def finish(self) -> None:
        """Stop collecting, give back what was popped but not run, and let the sender push what was run."""
        self.halt.set()
        self.collector.join(timeout=JOIN_S)
        with contextlib.suppress(redis_lib.RedisError):  # if Redis is gone, clients resend them
            self.give_back()
        self.done.put(None)
        self.sender.join(timeout=JOIN_S)

    def give_back(self) -> None:
        """Requests popped but not run go back to the head of the list, in their order, for another server."""
        raws: list[bytes] = []
        while not self.ready.empty():
            raws += self.ready.get_nowait().raws
        if self.filling is not None:
            raws += self.filling.raws
            self.filling = None
        raws += [raw for _, raw in self.held]
        self.held.clear()
        if raws:
            self.client.lpush(self.requests_key, *reversed(raws))

    # The collector thread.

    def collect_loop(self) -> None:
        """Collect batches until halted; an outage is waited out, any other error handed to the forward thread."""
        try:
            while not self.halt.is_set():
                try:
                    self.collect_step()
                except redis_lib.RedisError as e:
                    if not is_outage(e):
                        raise
                    self.outage.lost("collector", e)
                    self.clock.forget()  # Redis may come back elsewhere (failover), with another clock
                    self.halt.wait(1.0)
                    continue
                self.outage.passed("collector")
        except BaseException as e:  # raised again in the forward thread, which logs and stops
            self.failure = e
        finally:
            self.collect_channel.close()

    def collect_step(self) -> None:
        """Fill a free slot's buffer; pass it on once it holds requests and is full or the wait is over."""
        if self.filling is None:
            try:
                self.filling = _Batch(self.free.get(timeout=HANDOFF_WAIT_S))
            except queue.Empty:
                return
        if self.collect(self.filling):
            self.ready.put(self.filling)
            self.filling = None

    def collect(self, batch: _Batch) -> bool:
        """Whole requests into the batch until it is full or the wait, which starts with its first request, is
        over; whether it holds any. LPOP first: under load the list is rarely empty, and a BLPOP costs a round
        trip more."""
        self.fill(batch)
        started = time.monotonic()
        deadline = started + self.settings.inference_wait_ms / 1000.0
        while batch.positions < self.batch_size and not self.held and not self.halt.is_set():
            raws = self.collect_channel.lpop(self.requests_key, self.pop_count(batch))
            if not raws and not batch.requests:
                first = self.collect_channel.blpop(self.requests_key, POP_TIMEOUT_S)
                if first is None:
                    return False
                raws = [first]
                started = time.monotonic()
                deadline = started + self.settings.inference_wait_ms / 1000.0
            if raws:
                self.admit(raws)
                self.fill(batch)
            if time.monotonic() >= deadline:
                break
            if not raws:  # a poll, not a BLPOP: Redis ends a blocking pop's timeout only at its 10 Hz tick
                time.sleep(IDLE_POLL_S)
        self.window.gather_s += time.monotonic() - started
        return bool(batch.requests)

    def pop_count(self, batch: _Batch) -> int:
        """About as many requests as should fill the batch, judging by the size of the last ones seen."""
        left = self.batch_size - batch.positions
        return min(MAX_POP, max(1, int(np.ceil(left / max(self.request_positions, 1.0)))))

    def admit(self, raws: list[bytes]) -> None:
        """Decode popped requests (no copy yet) into the queue of those waiting for a batch."""
        arrived = self.clock.now_us()
        for raw in raws:
            try:
                request = decode_request(
                    raw, max_positions=self.settings.max_request_positions, planes_shape=self.game.planes_shape
                )
            except WireError as e:
                self.dropped += 1
                self.log(f"dropped a malformed request ({e}); {self.dropped} dropped so far")
                continue
            waited_s = max(0, arrived - request.sent_us) / 1e6
            if waited_s > REQUEST_TTL_S:  # nobody waits for its answer: serving it would delay live ones
                self.stale += 1
                self.window.stale += 1
                continue
            self.window.queue_wait_s += waited_s
            self.request_positions = len(request.planes)
            self.held.append((request, raw))

    def fill(self, batch: _Batch) -> None:
        """Move waiting requests into the batch's buffer while they fit (the first one always does)."""
        buffer = self.runner.buffers[batch.slot]
        limit = min(self.batch_size, len(buffer))
        while self.held:
            k = len(self.held[0][0].planes)
            if batch.requests and batch.positions + k > limit:
                break
            request, raw = self.held.popleft()
            buffer[batch.positions : batch.positions + k] = request.planes  # [k, C, H, W], the only copy
            batch.requests.append(request)
            batch.raws.append(raw)
            batch.positions += k

    # The sender thread.

    def send_loop(self) -> None:
        """Push each run batch's replies until told to finish; replies an outage loses are resent for by clients."""
        try:
            while True:
                try:
                    batch = self.done.get(timeout=HANDOFF_WAIT_S)
                except queue.Empty:
                    continue
                if batch is None:
                    return
                try:
                    self.send(batch)
                except redis_lib.RedisError as e:
                    if not is_outage(e):
                        raise
                    self.outage.lost("sender", e)
                    continue
                finally:
                    self.free.put(batch.slot)
                self.outage.passed("sender")
        except BaseException as e:  # raised again in the forward thread, which logs and stops
            self.failure = e
        finally:
            self.send_channel.close()

    def send(self, batch: _Batch) -> None:
        """Each sender gets the rows of its own request; one pipelined round trip for the batch."""
        started = time.monotonic()
        assert batch.logits is not None and batch.values is not None
        logits, values, version = batch.logits, batch.values, batch.version
        replies: list[tuple[str, tuple[bytes, memoryview, memoryview]]] = []
        start = 0
        for request in batch.requests:
            end = start + len(request.planes)
            key = keys.reply(self.run, request.client_id)
            replies.append((key, reply_parts(request.request_id, version, logits[start:end], values[start:end])))
            start = end
        # EXPIRE with every push: a drained list is deleted, and the next push would create it without expiry.
        self.send_channel.push_many(replies, {key: REPLY_TTL_S for key, _ in replies})
        self.window.send_s += time.monotonic() - started

    # Between batches, in the forward thread.

    def maybe_swap(self) -> None:
        """Load the newest published weights if they are newer than those served."""
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
        w, now = self.window, time.monotonic()
        elapsed = max(now - w.started, 1e-9)
        if w.batches:  # the means of an idle window are those of the last busy one
            self.means = {
                "batch_fill": round(w.positions / w.batches / self.batch_size, 3),
                "forward_ms": round(1000 * w.forward_s / w.batches, 3),
                "wait_ms": round(1000 * w.gather_s / w.batches, 3),
                "queue_wait_ms": round(1000 * w.queue_wait_s / max(w.requests, 1), 3),
                "idle_ms": round(1000 * w.idle_s / w.batches, 3),
                "send_ms": round(1000 * w.send_s / w.batches, 3),
            }
        choice = getattr(self.runner, "choice", None)
        fields = {
            "device": str(self.runner.device),
            "precision": choice.describe() if choice is not None else "",
            "weights_version": self.runner.version,
            "batch_size": self.batch_size,
            "inference_wait_ms": self.settings.inference_wait_ms,  # with batch_size: this process's own, if given
            "batches": self.batches,
            "positions": self.positions,
            "requests": self.requests,
            "dropped": self.dropped,
            "stale": self.stale,
            "evals_per_s": round(w.positions / elapsed, 1),
            "batches_per_s": round(w.batches / elapsed, 2),
            "forward_busy": round(min(1.0, w.forward_s / elapsed), 3),
            **self.means,
            "forward_s": round(self.forward_s, 4),
            "forward_cpu_s": round(self.forward_cpu_s, 4),
            "cpu_s": round(time.process_time(), 4),
            "backlog": self.client.llen(self.requests_key),
        }
        heartbeat.beat(self.client, self.run, ROLE, self.name, fields)
        if w.stale:
            self.log(f"dropped {w.stale} stale requests (stamped over {REQUEST_TTL_S:g} s ago: their senders "
                     f"are gone); {self.stale} so far")
        self.last_beat, self.window = now, _Window()


def wait_for_weights(
    store: WeightStore, client: Redis, run: str, stop: threading.Event, log: Callable[[str], None]
) -> tuple[int, bytes] | None:
    """The newest weights once any exist, saying once that it waits; None if stopped first."""
    beat = {"weights_version": "none"}
    return wait_for(store.latest, log, f"waiting for the first weights of run {run!r} (the trainer publishes them)",
                    poll_s=WAIT_POLL_S, stop=stop,
                    between=lambda: heartbeat.beat(client, run, ROLE, heartbeat.process_id(), beat))


def run(
    settings: Settings,
    client: Redis,
    run: str,
    run_dir: Path,
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
    store = WeightStore(client, run, run_dir, keep_in_redis=settings.weights_kept_in_redis)
    found = wait_for_weights(store, client, run, stop, log)
    if found is None:
        return
    version, data = found
    model, _ = model_from_bytes(game, data)
    if torch.device(device).type == "cuda":
        log(f"device {device}: {torch.cuda.get_device_name(torch.device(device))}")
    runner = NetRunner(model, device, settings.inference_batch_size, batch_capacity(settings), options,
                       version=version, slots=SLOTS, log=log)
    log(f"serving run {run!r} on {device} with weights version {version}")
    serve(settings, client, run, store, runner, stop=stop, max_batches=max_batches, log=log, name=name)


def batch_capacity(settings: Settings) -> int:
    """Rows of the batch buffer: a batch, or one request bigger than a batch (served alone)."""
    return max(settings.inference_batch_size, settings.max_request_positions)


def serve(settings: Settings, client: Redis, run: str, store: WeightStore, runner: Runner, *,
          stop: threading.Event, max_batches: int | None = None, log: Callable[[str], None] = print,
          name: str | None = None) -> None:
    """The serving loop with a runner of the caller's (`azjobs bench transport` gives a null one)."""
    server = _Server(settings, client, run, store, runner, get_game(settings.game), log,
                     name or heartbeat.process_id())
    server.start()
    try:
        _loop(server, stop, max_batches)
    finally:
        server.finish()
        with contextlib.suppress(redis_lib.RedisError):  # the last figures, if Redis is still there
            server.beat()
        log(f"stopped after {server.batches} batches, {server.positions} positions, {server.dropped} dropped, "
            f"{server.stale} stale")


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
