"""The inference server (`azjobs gpu-serve`): drains the run's request list in batches, one forward pass each.

Loop: block on the request list, keep popping whole requests until the batch holds
`inference_batch_size` positions or `inference_wait_ms` has passed, copy their planes into one
preallocated buffer, run the network once, push each reply to its sender's list. Between batches
(never mid-batch) it hot-swaps to the newest published weights. A malformed request is logged,
counted and dropped; several servers may drain the same list.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import redis as redis_lib
import torch
from redis import Redis

from azjobs import heartbeat, keys
from azjobs.errors import AzjobsError
from azjobs.games import get_game
from azjobs.games.base import Game
from azjobs.inference.local import LocalEvaluator, default_device
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.wire import Request, WireError, decode_request, encode_reply

ROLE = "gpu-serve"
POP_TIMEOUT_S = 1.0  # longest block on an empty list, so `stop` is seen within a second
IDLE_POLL_S = 0.0002  # pause between non-blocking pops while a partial batch waits
MAX_POP = 64  # most requests taken by one LPOP
VERSION_CHECK_S = 0.5  # how often the newest weights version is looked up
REPLY_TTL_S = 300  # a reply list nobody reads (its client died) expires after this
WAIT_POLL_S = 1.0  # poll interval while no weights exist yet


@dataclass
class _Window:
    """Figures since the last heartbeat, for its means and rates."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    positions: int = 0
    forward_s: float = 0.0
    wait_s: float = 0.0


class _Server:
    """One server's state: the evaluator, the batch buffer and its figures."""

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        run: str,
        store: WeightStore,
        evaluator: LocalEvaluator,
        game: Game,
        log: Callable[[str], None],
    ) -> None:
        self.settings, self.client, self.run, self.store = settings, client, run, store
        self.evaluator, self.game, self.log = evaluator, game, log
        self.batch_size = settings.inference_batch_size
        self.requests_key = keys.requests(run)
        self.pid = heartbeat.process_id()
        self.buffer = np.empty((self.batch_size + settings.max_request_positions, *game.planes_shape), np.uint8)
        self.batches = self.positions = self.requests = self.dropped = 0
        self.window = _Window()
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
        """Whole requests until the batch is full or the wait is over; [] if none came."""
        first = self.client.blpop([self.requests_key], timeout=POP_TIMEOUT_S)
        if first is None:
            return []
        started = time.monotonic()
        deadline = started + self.settings.inference_wait_ms / 1000.0
        batch: list[Request] = []
        positions = self.admit(first[1], batch)
        while positions < self.batch_size:
            # Pop about as many requests as should fill the batch, judging by those seen so far.
            per_request = positions / len(batch) if batch else self.batch_size
            count = min(MAX_POP, max(1, int(np.ceil((self.batch_size - positions) / max(per_request, 1.0)))))
            raws = self.client.lpop(self.requests_key, count)
            for raw in raws or ():
                positions += self.admit(raw, batch)
            if time.monotonic() >= deadline:
                break
            if not raws:
                time.sleep(IDLE_POLL_S)
        self.window.wait_s += time.monotonic() - started
        return batch

    def admit(self, raw: bytes, batch: list[Request]) -> int:
        """Decode one request into the batch; its positions (0 when dropped as malformed)."""
        try:
            request = decode_request(
                raw, max_positions=self.settings.max_request_positions, planes_shape=self.game.planes_shape
            )
        except WireError as e:
            self.dropped += 1
            self.log(f"dropped a malformed request ({e}); {self.dropped} dropped so far")
            return 0
        batch.append(request)
        return len(request.planes)

    def serve(self, batch: list[Request]) -> None:
        """One forward pass over the batch; each sender gets the rows of its own request."""
        n = sum(len(r.planes) for r in batch)
        if n > len(self.buffer):
            self.buffer = np.empty((n, *self.game.planes_shape), np.uint8)
        offsets = np.cumsum([0] + [len(r.planes) for r in batch])
        for request, start, end in zip(batch, offsets[:-1], offsets[1:]):
            self.buffer[start:end] = request.planes  # [k, C, H, W]
        started = time.perf_counter()
        logits, values = self.evaluator.evaluate(self.buffer[:n])  # [n, A], [n]
        self.window.forward_s += time.perf_counter() - started
        version = self.evaluator.version
        pipe = self.client.pipeline(transaction=False)
        for request, start, end in zip(batch, offsets[:-1], offsets[1:]):
            key = keys.reply(self.run, request.client_id)
            pipe.rpush(key, encode_reply(request.request_id, version, logits[start:end], values[start:end]))
            pipe.expire(key, REPLY_TTL_S)
        pipe.execute()
        self.batches += 1
        self.positions += n
        self.requests += len(batch)
        self.window.batches += 1
        self.window.positions += n

    def maybe_swap(self) -> None:
        """Load the newest published weights if they are newer than those served."""
        raw = self.client.get(keys.weights_latest(self.run))
        latest = int(raw) if raw is not None else self.store.latest_version()
        if latest is None or latest <= self.evaluator.version or latest == self.failed_version:
            return
        try:
            self.evaluator.load(self.store.load(latest), version=latest)
        except (AzjobsError, OSError, KeyError, ValueError) as e:
            self.failed_version = latest
            self.log(f"cannot load weights version {latest}, still serving {self.evaluator.version}: {e}")
            return
        self.log(f"now serving weights version {latest}")

    def beat(self) -> None:
        w, now = self.window, time.monotonic()
        elapsed = max(now - w.started, 1e-9)
        per_batch = max(w.batches, 1)
        fields = {
            "device": str(self.evaluator.device),
            "weights_version": self.evaluator.version,
            "batches": self.batches,
            "positions": self.positions,
            "requests": self.requests,
            "dropped": self.dropped,
            "batch_fill": round(w.positions / per_batch / self.batch_size, 3),
            "evals_per_s": round(w.positions / elapsed, 1),
            "batches_per_s": round(w.batches / elapsed, 2),
            "forward_ms": round(1000 * w.forward_s / per_batch, 3),
            "wait_ms": round(1000 * w.wait_s / per_batch, 3),
            "backlog": self.client.llen(self.requests_key),
        }
        heartbeat.beat(self.client, self.run, ROLE, self.pid, fields)
        self.last_beat, self.window = now, _Window()


def describe_device(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))}, mixed precision)"
    return device


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
    stop: threading.Event | None = None,
    max_batches: int | None = None,
    log: Callable[[str], None] = print,
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
    evaluator = LocalEvaluator.from_bytes(game, data, device)
    evaluator.version = version
    server = _Server(settings, client, run, store, evaluator, game, log)
    log(f"serving run {run!r} on {describe_device(device)} with weights version {version}")
    try:
        _loop(server, stop, max_batches)
    finally:
        with contextlib.suppress(redis_lib.RedisError):  # the last figures, if Redis is still there
            server.beat()
        log(f"stopped after {server.batches} batches, {server.positions} positions, {server.dropped} dropped")


def _loop(server: _Server, stop: threading.Event, max_batches: int | None) -> None:
    """Serve until stopped; a lost Redis connection is waited out (clients resend what was lost)."""
    lost = False
    while not stop.is_set() and (max_batches is None or server.batches < max_batches):
        try:
            server.step()
        except (redis_lib.ConnectionError, redis_lib.TimeoutError) as e:
            if not lost:
                server.log(f"lost the connection to Redis ({e.__class__.__name__}); retrying every second")
                lost = True
            stop.wait(1.0)
            continue
        if lost:
            server.log("Redis is back; serving again")
            lost = False
