"""gpu-serve's collector thread: pops whole requests from the run's request list and decodes them straight into
a free batch buffer, until the batch is full or its wait is over, then hands it to the forward thread.

It blocks on the list (BLPOP) only when the last pop found it empty; otherwise it LPOPs several requests at
once, and the next batch's LPOP goes out as soon as this one is full, so that Redis answers while the planes
are copied. A request that would overflow the batch waits at the head of the next one. A malformed request is
logged, counted and dropped; a stale one (stamped more than REQUEST_TTL_S ago on Redis' clock: its sender is
gone) is counted and dropped unserved. Requests popped but not run go back to the head of the list on stop.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import redis as redis_lib
from redis import Redis

from azjobs.cluster.clock import RedisClock
from azjobs.cluster.connection import Outage, is_outage
from azjobs.inference.batch import Batch
from azjobs.inference.channel import ListChannel
from azjobs.settings import Settings
from azjobs.wire import REQUEST_TTL_S, Request, RequestDecoder, WireError

POP_TIMEOUT_S = 1.0  # longest block on an empty list, so `stop` is seen within a second
IDLE_POLL_S = 0.0002  # pause between non-blocking pops while a partial batch waits
HANDOFF_WAIT_S = 0.1  # longest wait for another thread's batch, so swaps, beats and stops are not held up
MAX_POP = 64  # most requests taken by one LPOP
REQUEST_TTL_US = int(REQUEST_TTL_S * 1e6)


class Collector:
    """The collector thread's state: the requests popped and not yet in a batch, the batch being filled, and
    running totals of what it saw (read by the forward thread for its heartbeats)."""

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        requests_key: str,
        buffers: list[np.ndarray],
        planes_shape: tuple[int, int, int],
        outage: Outage,
        log: Callable[[str], None],
        role: str,
    ) -> None:
        self.client, self.requests_key, self.outage, self.log = client, requests_key, outage, log
        self.batch_size = settings.inference_batch_size
        self.wait_s = settings.inference_wait_ms / 1000.0
        self.flat = [buffer.reshape(-1) for buffer in buffers]  # each slot's buffer, its values in a row
        self.values = int(np.prod(planes_shape))  # per position
        self.limit = min([self.batch_size, *(len(buffer) for buffer in buffers)])  # positions a batch may hold
        self.decode = RequestDecoder(max_positions=settings.max_request_positions, planes_shape=planes_shape)
        self.channel = ListChannel(client)  # the collector's own connection
        self.clock = RedisClock(client)  # the clock requests are stamped on
        self.held: deque[tuple[Request, bytes]] = deque()  # popped, not yet in a batch: (request, message)
        self.held_positions = 0
        self.filling: Batch | None = None  # the batch in progress
        self.request_positions = 1  # positions of the last request popped, for the next LPOP's count
        self.popped_ahead = False  # an LPOP was sent for the next batch, its reply not read yet
        self.popped_count = 1  # requests the last LPOP asked for
        self.drained = True  # the last pop took fewer requests than it asked for: the list was empty then
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()  # slots whose buffers nobody uses
        for slot in range(len(buffers)):
            self.free.put(slot)
        self.ready: queue.SimpleQueue[Batch] = queue.SimpleQueue()  # collected, waiting for the forward thread
        self.halt = threading.Event()  # stop collecting; set when serving ends
        self.failure: BaseException | None = None  # an error of the thread, raised by the forward thread
        self.dropped = self.stale = 0
        self.gather_s = self.queue_wait_s = 0.0  # running totals: gathering batches, requests' waits in the list
        self.thread = threading.Thread(target=self.loop, name=f"{role}-collector", daemon=True)

    def loop(self) -> None:
        """Collect batches until halted; an outage is waited out, any other error handed to the forward thread."""
        try:
            while not self.halt.is_set():
                try:
                    self.step()
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
            self.channel.close()

    def step(self) -> None:
        """Fill a free slot's buffer; pass it on once it holds requests and is full or the wait is over."""
        if self.filling is None:
            try:
                self.filling = Batch(self.free.get(timeout=HANDOFF_WAIT_S))
            except queue.Empty:
                return
        if self.collect(self.filling):
            self.ready.put(self.filling)
            self.filling = None

    def collect(self, batch: Batch) -> bool:
        """Whole requests into the batch until it is full or the wait, which starts with its first request, is
        over; whether it holds any. LPOP first (under load the list is rarely empty, and a BLPOP costs a round
        trip more), unless the last pop found it empty: then BLPOP (an LPOP would find nothing again)."""
        self.fill(batch)
        started = time.monotonic()
        deadline = started + self.wait_s
        while batch.positions < self.batch_size and not self.held and not self.halt.is_set():
            raws = None if self.drained and not batch.requests else self.pop(batch.positions)
            if not raws and not batch.requests:
                first = self.channel.blpop(self.requests_key, POP_TIMEOUT_S)
                if first is None:
                    return False
                raws = [first]
                started = time.monotonic()
                deadline = started + self.wait_s
            if raws:
                self.admit(raws)
                if batch.positions + self.held_positions >= self.batch_size:
                    self.pop_ahead(batch)  # before the planes are copied: Redis answers meanwhile
                self.fill(batch)
            if time.monotonic() >= deadline:
                break
            if not raws:  # a poll, not a BLPOP: Redis ends a blocking pop's timeout only at its 10 Hz tick
                time.sleep(IDLE_POLL_S)
        self.gather_s += time.monotonic() - started
        return bool(batch.requests)

    def pop(self, positions: int) -> list[bytes] | None:
        """Requests for a batch that holds so many positions: those popped ahead, else an LPOP's."""
        if self.popped_ahead:
            self.popped_ahead = False
            raws: list[bytes] | None = self.channel.result()
        else:
            self.popped_count = self.pop_count(positions)
            raws = self.channel.lpop(self.requests_key, self.popped_count)
        self.drained = raws is None or len(raws) < self.popped_count
        return raws

    def pop_ahead(self, batch: Batch) -> None:
        """Send the next batch's LPOP now that this one is full, so that its requests are there when it starts:
        only when the list did not just run dry and a free buffer waits for them (requests are never popped
        early to wait for one)."""
        left = batch.positions + self.held_positions - self.batch_size  # the overflow
        if left < self.batch_size and not self.drained and not self.free.empty() and not self.halt.is_set():
            self.popped_count = self.pop_count(left)
            self.channel.lpop_later(self.requests_key, self.popped_count)
            self.popped_ahead = True

    def pop_count(self, positions: int) -> int:
        """About as many requests as should fill a batch holding so many positions, judging by the size of the
        last ones seen."""
        left = self.batch_size - positions
        return min(MAX_POP, max(1, -(-left // max(self.request_positions, 1))))

    def admit(self, raws: list[bytes]) -> None:
        """Decode popped requests (no copy yet) into the queue of those waiting for a batch."""
        arrived = self.clock.now_us()
        decode, held = self.decode, self.held
        for raw in raws:
            try:
                request = decode(raw)
            except WireError as e:
                self.dropped += 1
                self.log(f"dropped a malformed request ({e}); {self.dropped} dropped so far")
                continue
            waited_us = arrived - request.sent_us
            if waited_us > REQUEST_TTL_US:  # nobody waits for its answer: serving it would delay live ones
                self.stale += 1
                continue
            if waited_us > 0:
                self.queue_wait_s += waited_us / 1e6
            held.append((request, raw))
            self.held_positions += request.positions
            self.request_positions = request.positions

    def fill(self, batch: Batch) -> None:
        """Move waiting requests into the batch's buffer while they fit (the first one always does)."""
        held = self.held
        if not held:
            return
        flat, values, n = self.flat[batch.slot], self.values, batch.positions
        requests, raws = batch.requests, batch.raws
        while held:
            request, raw = held[0]
            k = request.positions
            if n and n + k > self.limit:
                break
            held.popleft()
            request.write_planes(flat[n * values : (n + k) * values])  # [k * C * H * W], the only copy
            requests.append(request)
            raws.append(raw)
            n += k
        self.held_positions -= n - batch.positions
        batch.positions = n

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
        self.held_positions = 0
        if raws:
            self.client.lpush(self.requests_key, *reversed(raws))
