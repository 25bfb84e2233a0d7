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
how long the forward thread waited for work (`azjobs status` shows them).
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
from azjobs.wire import REQUEST_TTL_S, Request, WireError, batch_reply_parts, decode_request

ROLE = "gpu-serve"
SLOTS = 3  # batch buffers: one being filled, one in the forward pass, one whose replies wait for the next pass
POP_TIMEOUT_S = 1.0  # longest block on an empty list, so `stop` is seen within a second
IDLE_POLL_S = 0.0002  # pause between non-blocking pops while a partial batch waits
HANDOFF_WAIT_S = 0.1  # longest wait for another thread's batch, so swaps, beats and stops are not held up
MAX_POP = 64  # most requests taken by one LPOP
VERSION_CHECK_S = 0.5  # how often the newest weights version is looked up
REPLY_TTL_S = 300  # a reply list nobody reads (its client died) expires after this; set with every push
WAIT_POLL_S = 1.0  # poll interval while no weights exist yet
SETTLE_S = 0.05  # longest the acknowledgements of reply pushes go unread while batches keep coming
SETTLE_AFTER = 512  # ... or this many of them (a bound on what waits in the socket)
JOIN_S = 10.0  # longest wait for the collector to finish when stopping


class Runner(Protocol):
    """What the server runs: `NetRunner`, or `NullRunner` when only transport is measured."""

    device: torch.device
    version: int
    buffers: list[np.ndarray]  # [max_batch, C, H, W] uint8 each: the batch buffers requests are decoded into

    def forward(self, n: int, slot: int) -> tuple[np.ndarray, np.ndarray]: ...

    def load(self, data: bytes, version: int) -> None: ...


class AsyncRunner(Runner, Protocol):
    """A runner whose pass runs while the CPU does other work (`asynchronous` true: NetRunner on CUDA, a
    NullRunner with a forward time): `launch` starts it, `outputs` waits for it; `forward` is both."""

    asynchronous: bool

    def launch(self, n: int, slot: int) -> None: ...

    def outputs(self, n: int, slot: int) -> tuple[np.ndarray, np.ndarray]: ...


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

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        run: str,
        store: WeightStore,
        runner: Runner,
        game: Game,
        log: Callable[[str], None],
        name: str,
    ) -> None:
        self.settings, self.client, self.run, self.store = settings, client, run, store
        self.runner, self.game, self.log, self.name = runner, game, log, name
        self.batch_size = settings.inference_batch_size
        self.requests_key = keys.requests(run)
        self.collect_channel = ListChannel(client)  # each thread with Redis work has its own connection
        self.send_channel = ListChannel(client)  # the forward thread's pushes of replies
        self.clock = RedisClock(client)  # the clock requests are stamped on (the collector's alone)
        self.held: deque[tuple[Request, bytes]] = deque()  # popped, not yet in a batch: (request, message)
        self.filling: _Batch | None = None  # the collector's batch in progress
        self.request_positions = 1  # positions of the last request popped, for the next LPOP's count
        self.popped_ahead = False  # an LPOP was sent for the next batch, its reply not read yet
        self.popped_count = 1  # requests the last LPOP asked for
        self.drained = True  # the last pop took fewer requests than it asked for: the list was empty then
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()  # slots whose buffers nobody uses
        for slot in range(len(runner.buffers)):
            self.free.put(slot)
        self.ready: queue.SimpleQueue[_Batch] = queue.SimpleQueue()  # collected, waiting for the forward thread
        self.unsent: _Batch | None = None  # run, its replies pushed after the next batch is launched
        self.settled = 0.0  # when the pushes' acknowledgements were last read (time.monotonic)
        self.asynchronous = bool(getattr(runner, "asynchronous", False))
        self.halt = threading.Event()  # the collector stops; set when serving ends
        self.failure: BaseException | None = None  # an error of the collector, raised by serve
        self.outage = Outage(log, "Redis is back; serving again")  # said once for all its threads
        self.batches = self.positions = self.requests = self.dropped = self.stale = 0
        self.forward_s = self.forward_cpu_s = 0.0
        self.window = _Window()
        self.means: dict[str, float] = {}  # batch fill, forward, gather and queue wait of the last busy window
        self.last_beat = self.last_version_check = 0.0
        self.failed_version = -1  # a version that would not load, so it is reported once
        self.collector = threading.Thread(target=self.collect_loop, name=f"{ROLE}-collector", daemon=True)

    # The forward thread (the caller's).

    def step(self) -> None:
        """Run one collected batch if one comes within HANDOFF_WAIT_S; swap weights and beat when due."""
        if self.failure is not None:
            raise self.failure
        if self.unsent is not None and self.ready.empty():
            self.send_unsent()  # no next pass to start first
        started = time.monotonic()
        batch = self.next_batch()
        self.window.idle_s += time.monotonic() - started
        if batch is not None:
            self.forward(batch)
        now = time.monotonic()
        if now - self.last_version_check >= VERSION_CHECK_S:
            self.last_version_check = now
            self.maybe_swap()
        if now - self.last_beat >= heartbeat.INTERVAL_S:
            self.beat()

    def next_batch(self) -> _Batch | None:
        """The next collected batch if one comes within HANDOFF_WAIT_S; if none does, the acknowledgements of
        the pushes so far are read."""
        try:
            return self.ready.get(timeout=HANDOFF_WAIT_S)
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

    def forward(self, batch: _Batch) -> None:
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
        w.batches, w.positions, w.requests, w.forward_s = (
            w.batches + 1,
            w.positions + batch.positions,
            w.requests + len(batch.requests),
            w.forward_s + forward_s,
        )
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
            self.free.put(batch.slot)
        if settled:  # Redis took every push so far (it may refuse the ones not yet acknowledged)
            self.outage.passed("sender")

    def start(self) -> None:
        self.collector.start()

    def finish(self) -> None:
        """Stop collecting, give back what was popped but not run, and push the replies of what was run."""
        self.halt.set()
        self.collector.join(timeout=JOIN_S)
        with contextlib.suppress(redis_lib.RedisError):  # if Redis is gone, clients resend them
            self.give_back()
        try:
            self.send_unsent()
            self.send_channel.settle()  # the last pushes processed before the connection goes
        except redis_lib.RedisError:  # lost replies are resent for by their clients
            pass
        finally:
            self.send_channel.close()

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
            if self.popped_ahead:  # its requests go back with the others
                with contextlib.suppress(redis_lib.RedisError):
                    self.admit(self.pop(0) or [])
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
        over; whether it holds any. LPOP first (under load the list is rarely empty, and a BLPOP costs a round
        trip more), unless the last pop found it empty: then BLPOP (an LPOP would find nothing again)."""
        self.fill(batch)
        started = time.monotonic()
        deadline = started + self.settings.inference_wait_ms / 1000.0
        while batch.positions < self.batch_size and not self.held and not self.halt.is_set():
            raws = None if self.drained and not batch.requests else self.pop(batch.positions)
            if not raws and not batch.requests:
                first = self.collect_channel.blpop(self.requests_key, POP_TIMEOUT_S)
                if first is None:
                    return False
                raws = [first]
                started = time.monotonic()
                deadline = started + self.settings.inference_wait_ms / 1000.0
            if raws:
                self.admit(raws)
                if batch.positions + sum(request.positions for request, _ in self.held) >= self.batch_size:
                    self.pop_ahead(batch)  # before the planes are copied: Redis answers meanwhile
                self.fill(batch)
            if time.monotonic() >= deadline:
                break
            if not raws:  # a poll, not a BLPOP: Redis ends a blocking pop's timeout only at its 10 Hz tick
                time.sleep(IDLE_POLL_S)
        self.window.gather_s += time.monotonic() - started
        return bool(batch.requests)

    def pop(self, positions: int) -> list[bytes] | None:
        """Requests for a batch that holds so many positions: those popped ahead, else an LPOP's."""
        if self.popped_ahead:
            self.popped_ahead = False
            raws = self.collect_channel.result()
        else:
            self.popped_count = self.pop_count(positions)
            raws = self.collect_channel.lpop(self.requests_key, self.popped_count)
        self.drained = raws is None or len(raws) < self.popped_count
        return raws

    def pop_ahead(self, batch: _Batch) -> None:
        """Send the next batch's LPOP now that this one is full, so that its requests are there when it starts:
        only when the list did not just run dry and a free buffer waits for them (requests are never popped
        early to wait for one)."""
        left = batch.positions + sum(request.positions for request, _ in self.held) - self.batch_size  # overflow
        if left < self.batch_size and not self.drained and not self.free.empty() and not self.halt.is_set():
            self.popped_count = self.pop_count(left)
            self.collect_channel.lpop_later(self.requests_key, self.popped_count)
            self.popped_ahead = True

    def pop_count(self, positions: int) -> int:
        """About as many requests as should fill a batch holding so many positions, judging by the size of the
        last ones seen."""
        left = self.batch_size - positions
        return min(MAX_POP, max(1, -(-left // max(self.request_positions, 1))))

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
            self.request_positions = request.positions
            self.held.append((request, raw))

    def fill(self, batch: _Batch) -> None:
        """Move waiting requests into the batch's buffer while they fit (the first one always does)."""
        buffer = self.runner.buffers[batch.slot]
        limit = min(self.batch_size, len(buffer))
        while self.held:
            k = self.held[0][0].positions
            if batch.requests and batch.positions + k > limit:
                break
            request, raw = self.held.popleft()
            request.write_planes(buffer[batch.positions : batch.positions + k])  # [k, C, H, W], the only copy
            batch.requests.append(request)
            batch.raws.append(raw)
            batch.positions += k

    # Replies, pushed by the forward thread.

    def send(self, batch: _Batch) -> bool:
        """Each sender gets the rows of its own request; one write for the batch, not waited on. Whether the
        acknowledgements of the pushes before it were read (a refusal among them is raised)."""
        started = time.monotonic()
        assert batch.logits is not None and batch.values is not None
        requests = batch.requests
        parts = batch_reply_parts(
            [r.request_id for r in requests], [r.positions for r in requests], batch.version, batch.logits, batch.values
        )
        replies = [(keys.reply(self.run, r.client_id), reply) for r, reply in zip(requests, parts)]
        # The acknowledgements of earlier pushes, come long since, are read now and then: pushing never waits on
        # Redis, and a refusal (OOM, read-only) is seen within SETTLE_S.
        settling = started - self.settled >= SETTLE_S or self.send_channel.unread >= SETTLE_AFTER
        if settling:
            self.send_channel.settle()
            self.settled = started
        refused = self.send_channel.take_errors()
        # EXPIRE with every push: a drained list is deleted, and the next push would create it without expiry.
        self.send_channel.push_many(replies, {key: REPLY_TTL_S for key, _ in replies}, wait=False)
        self.window.send_s += time.monotonic() - started
        if refused:  # earlier pushes that Redis refused (OOM, read-only): their clients resend
            raise refused[0]
        return settling

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
            self.log(
                f"dropped {w.stale} stale requests (stamped over {REQUEST_TTL_S:g} s ago: their senders "
                f"are gone); {self.stale} so far"
            )
        self.last_beat, self.window = now, _Window()


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
    log(f"serving run {run!r} on {device} with weights version {version}")
    serve(settings, client, run, store, runner, stop=stop, max_batches=max_batches, log=log, name=name)


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
    server = _Server(settings, client, run, store, runner, get_game(settings.game), log, name or heartbeat.process_id())
    server.start()
    try:
        _loop(server, stop, max_batches)
    finally:
        server.finish()
        with contextlib.suppress(redis_lib.RedisError):  # the last figures, if Redis is still there
            server.beat()
        log(
            f"stopped after {server.batches} batches, {server.positions} positions, {server.dropped} dropped, "
            f"{server.stale} stale"
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
