"""The inference server (`azjobs gpu-serve`): drains the run's request list in batches, one forward pass each.

Loop: block on the request list, keep popping whole requests until the batch holds
`inference_batch_size` positions or `inference_wait_ms` has passed, decoding each straight into the
runner's batch buffer (a request that would overflow the batch waits at the head of the next one),
run the network once, push each reply to its sender's list. Between batches (never mid-batch) it
hot-swaps to the newest published weights. A malformed request is logged, counted and dropped; a
stale one (stamped more than REQUEST_TTL_S ago on Redis' clock: its sender is gone) is counted and
dropped unserved; several servers may drain the same list. Its heartbeat carries batch fill, forward time, the time
spent gathering a batch and the time requests waited in the list (`azjobs status` shows them).
"""

from __future__ import annotations

import contextlib
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

from azjobs import heartbeat, keys
from azjobs.clock import RedisClock
from azjobs.connection import describe_outage, is_outage
from azjobs.errors import AzjobsError
from azjobs.games import get_game
from azjobs.games.base import Game
from azjobs.inference.channel import ListChannel
from azjobs.inference.local import default_device
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net.weights import model_from_bytes
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.wire import REQUEST_TTL_S, Request, WireError, decode_request, encode_reply

ROLE = "gpu-serve"
POP_TIMEOUT_S = 1.0  # longest block on an empty list, so `stop` is seen within a second
IDLE_POLL_S = 0.0002  # pause between non-blocking pops while a partial batch waits
MAX_POP = 64  # most requests taken by one LPOP
VERSION_CHECK_S = 0.5  # how often the newest weights version is looked up
REPLY_TTL_S = 300  # a reply list nobody reads (its client died) expires after this; set with every push
WAIT_POLL_S = 1.0  # poll interval while no weights exist yet


class Runner(Protocol):
    """What the server runs: `NetRunner`, or `NullRunner` when only transport is measured."""

    device: torch.device
    version: int
    planes: np.ndarray  # [max_batch, C, H, W] uint8, the batch buffer requests are decoded into

    def forward(self, n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def load(self, data: bytes, version: int) -> None: ...


@dataclass
class _Window:
    """Figures since the last heartbeat, for its means and rates."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    positions: int = 0
    requests: int = 0
    forward_s: float = 0.0
    gather_s: float = 0.0
    queue_wait_s: float = 0.0  # summed over requests
    stale: int = 0  # requests dropped as stale


class _Server:
    """One server's state: the runner with its batch buffer, requests held over, and its figures."""

    def __init__(self, settings: Settings, client: Redis, run: str, store: WeightStore, runner: Runner,
                 game: Game, log: Callable[[str], None], name: str) -> None:
        self.settings, self.client, self.run, self.store = settings, client, run, store
        self.runner, self.game, self.log, self.name = runner, game, log, name
        self.batch_size = settings.inference_batch_size
        self.requests_key = keys.requests(run)
        self.channel = ListChannel(client)  # the request and reply lists' own connection
        self.clock = RedisClock(client)  # the clock requests are stamped on
        self.held: deque[tuple[Request, bytes]] = deque()  # popped, not yet in a batch: (request, message)
        self.batches = self.positions = self.requests = self.dropped = self.stale = 0
        self.forward_s = self.forward_cpu_s = 0.0
        self.window = _Window()
        self.means: dict[str, float] = {}  # batch fill, forward, gather and queue wait of the last busy window
        self.last_beat = self.last_version_check = 0.0
        self.failed_version = -1  # a version that would not load, so it is reported once

    def step(self) -> None:
        """Serve one batch if a request comes within POP_TIMEOUT_S; swap weights and beat when due."""
        batch = self.collect()
        if batch:
            self.serve(batch)
        now = time.monotonic()
        if now - self.last_version_check >= VERSION_CHECK_S:
            self.last_version_check = now
            self.maybe_swap()
        if now - self.last_beat >= heartbeat.INTERVAL_S:
            self.beat()

    def collect(self) -> list[Request]:
        """Whole requests, decoded into the batch buffer, until the batch is full or the wait is over."""
        batch: list[Request] = []
        if not self.held:
            first = self.channel.blpop(self.requests_key, POP_TIMEOUT_S)
            if first is None:
                return []
            self.admit([first])
        started = time.monotonic()
        deadline = started + self.settings.inference_wait_ms / 1000.0
        positions = self.fill(batch, 0)
        while positions < self.batch_size and not self.held:
            # Pop about as many requests as should fill the batch, judging by those seen so far.
            per_request = positions / len(batch) if batch else self.batch_size
            count = min(MAX_POP, max(1, int(np.ceil((self.batch_size - positions) / max(per_request, 1.0)))))
            raws = self.channel.lpop(self.requests_key, count)
            if raws:
                self.admit(raws)
                positions = self.fill(batch, positions)
            if time.monotonic() >= deadline:
                break
            if not raws:
                time.sleep(IDLE_POLL_S)
        self.window.gather_s += time.monotonic() - started
        return batch

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
            self.held.append((request, raw))

    def fill(self, batch: list[Request], positions: int) -> int:
        """Move waiting requests into the batch buffer while they fit (the first one always does)."""
        buffer = self.runner.planes
        while self.held:
            k = len(self.held[0][0].planes)
            if batch and positions + k > min(self.batch_size, len(buffer)):
                break
            request, _ = self.held.popleft()
            buffer[positions : positions + k] = request.planes  # [k, C, H, W], the only copy
            batch.append(request)
            positions += k
        return positions

    def serve(self, batch: list[Request]) -> None:
        """One forward pass over the batch; each sender gets the rows of its own request."""
        n = sum(len(r.planes) for r in batch)
        started, cpu_started = time.perf_counter(), time.process_time()
        logits, values = self.runner.forward(n)  # [n, A], [n]
        forward_s = time.perf_counter() - started
        self.forward_cpu_s += time.process_time() - cpu_started
        self.forward_s += forward_s
        version = self.runner.version
        replies, expire = [], {}
        start = 0
        for request in batch:
            end = start + len(request.planes)
            key = keys.reply(self.run, request.client_id)
            replies.append((key, encode_reply(request.request_id, version, logits[start:end], values[start:end])))
            # With every push: a drained list is deleted, and the next push would create it without expiry.
            expire[key] = REPLY_TTL_S
            start = end
        self.channel.push_many(replies, expire)
        self.batches += 1
        self.positions += n
        self.requests += len(batch)
        w = self.window
        w.batches, w.positions, w.requests, w.forward_s = w.batches + 1, w.positions + n, w.requests + len(batch), \
            w.forward_s + forward_s

    def give_back(self) -> None:
        """Requests popped but not served go back to the head of the list, for another server."""
        if self.held:
            self.client.lpush(self.requests_key, *[raw for _, raw in reversed(self.held)])
            self.held.clear()

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
    said = False
    while not stop.is_set():
        found = store.latest()
        if found is not None:
            return found
        if not said:
            log(f"waiting for the first weights of run {run!r} (the trainer publishes them)")
            said = True
        heartbeat.beat(client, run, ROLE, heartbeat.process_id(), {"weights_version": "none"})
        stop.wait(WAIT_POLL_S)
    return None


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
                       version=version, log=log)
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
    try:
        _loop(server, stop, max_batches)
    finally:
        with contextlib.suppress(redis_lib.RedisError):  # the last figures, if Redis is still there
            server.give_back()
            server.beat()
        log(f"stopped after {server.batches} batches, {server.positions} positions, {server.dropped} dropped, "
            f"{server.stale} stale")


def _loop(server: _Server, stop: threading.Event, max_batches: int | None) -> None:
    """Serve until stopped; an outage of Redis (lost, silent, out of memory, read-only) is waited out,
    said once (clients resend what was lost)."""
    lost = False
    while not stop.is_set() and (max_batches is None or server.batches < max_batches):
        try:
            server.step()
        except redis_lib.RedisError as e:
            if not is_outage(e):
                raise
            if not lost:
                server.log(f"{describe_outage(e)}; retrying every second")
                lost = True
            server.clock.forget()  # Redis may come back elsewhere (failover), with another clock
            stop.wait(1.0)
            continue
        if lost:
            server.log("Redis is back; serving again")
            lost = False
