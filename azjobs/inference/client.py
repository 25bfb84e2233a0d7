"""The remote evaluator: sends planes to the run's inference servers through Redis and waits for the reply.

Each client owns a reply list (`keys.reply(run, client_id)`). Requests are stamped on Redis' clock.
A request whose reply does not come within `resend_after_s` is looked for in the request list: a copy
still waiting there (no server runs) is re-stamped in place, one that was taken (a server died
holding it) is pushed again under the same id. So the list holds at most one copy of each request
however long no server runs, workers resume by themselves, and servers drop the requests of senders
that are gone (stamped over REQUEST_TTL_S ago). A reply whose id is not pending (the answer to an
earlier copy of a resent request) is dropped, so each request is answered once, to its sender. An
outage of Redis (lost, restarted, silent, refusing writes) is waited out with backoff; once Redis
answers, every outstanding request is refreshed or pushed again the same way.
Self-play keeps several requests in flight (`planes_buffer`, `submit_buffer`, `receive_reply`: the
`AsyncEvaluator` of `azjobs.search.selfplay`), each built in place in a buffer of its own slot (as bits
when its planes are 0/1, `azjobs.wire`). A push is not waited for: its acknowledgement is read with the
next BLPOP, and `submit_buffer`'s request goes out in the same write as that BLPOP (self-play asks for
its next reply right after submitting), so Redis wakes once for both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
import redis as redis_lib
from redis import Redis

from azjobs import keys
from azjobs.cluster.clock import RedisClock
from azjobs.cluster.connection import is_outage
from azjobs.errors import AzjobsError
from azjobs.inference.channel import ListChannel
from azjobs.wire import (
    MAX_CLIENT_ID,
    REQUEST_TTL_S,
    RequestBuffer,
    WireError,
    decode_reply,
    encode_request,
    restamped,
)

# KEYS[1]: the request list; ARGV[1]: the copy pushed last; ARGV[2]: the same request stamped now.
# A copy still waiting is replaced in place (its place in the line kept); a taken one is pushed again.
REFRESH_OR_PUSH = """
local at = redis.call('LPOS', KEYS[1], ARGV[1])
if at then
  redis.call('LSET', KEYS[1], at, ARGV[2])
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
"""
BACKOFF_S = (0.05, 2.0)  # first and longest wait between tries while Redis is away
NEVER = float("-inf")  # `sent_at` of a request to (re)send at the first chance


def make_client_id(host: str | None = None, pid: int | None = None) -> str:
    """`host-pid-random`, printable and at most MAX_CLIENT_ID bytes whatever the host name: a long one
    (a cluster pod's, a fully qualified one) keeps its head, readable, and ends in a digest of the whole."""
    host = socket.gethostname() if host is None else host
    host = "".join(c if 0x21 <= ord(c) <= 0x7E and c != ":" else "_" for c in host) or "host"
    tail = f"-{os.getpid() if pid is None else pid}-{uuid.uuid4().hex[:8]}"
    room = MAX_CLIENT_ID - len(tail)
    if len(host) > room:
        digest = hashlib.sha256(host.encode()).hexdigest()[:8]
        host = f"{host[: room - len(digest) - 1]}~{digest}"
    return host + tail


@dataclass
class _Pending:
    message: bytes | memoryview  # a view of the slot's RequestBuffer, unchanged until the reply comes
    positions: int
    sent_at: float  # time.monotonic() of the last push or re-stamp; NEVER: not in Redis for sure


class InferenceClient:
    """`evaluate(planes) -> (logits, values)` answered by whichever inference server is running."""

    def __init__(
        self,
        redis: Redis,
        run: str,
        *,
        client_id: str | None = None,
        resend_after_s: float = 20.0,
        timeout_s: float | None = None,
        planes_shape: tuple[int, int, int] | None = None,
    ) -> None:
        if not 0 < resend_after_s < REQUEST_TTL_S / 2:
            raise ValueError(f"resend_after_s must be in (0, {REQUEST_TTL_S / 2:g}): servers drop older requests")
        self.redis = redis
        self.planes_shape = planes_shape  # (C, H, W) of the game: needed by planes_buffer only
        self.run = run
        self.client_id = client_id or make_client_id()
        self.resend_after_s = resend_after_s
        self.timeout_s = timeout_s
        self.last_version = -1  # weights version of the last reply; -1 before any
        self.resent = 0  # requests pushed again after resend_after_s (the previous copy was taken)
        self.refreshed = 0  # waiting copies re-stamped in place (no server took them)
        self.dropped = 0  # replies discarded: stale duplicates or malformed
        self.outages = 0  # times Redis went away (or refused writes) and was waited out
        self._backoff_s = 0.0  # the next wait while Redis is away; 0 while it answers
        # Ids grow with time, so a restarted client reusing its id never mistakes an old reply for a new one.
        self._next_id = time.time_ns()
        self._pending: dict[int, _Pending] = {}
        self._arrived: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self._buffers: dict[int, RequestBuffer] = {}  # slot -> the buffer its requests are built in
        self._reply_key = keys.reply(run, self.client_id)
        self._requests_key = keys.requests(run)
        self._channel = ListChannel(redis)  # the request and reply lists' own connection
        self._clock = RedisClock(redis)
        self._refresh_or_push = redis.register_script(REFRESH_OR_PUSH)

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """planes `[K, C, H, W]` uint8 -> (logits `[K, A]` float32, values `[K]` float32)."""
        return self.receive(self.submit(planes))

    __call__ = evaluate

    def submit(self, planes: np.ndarray) -> int:
        """Send one request without waiting; its id, for `receive`."""
        request_id = self._take_id()
        return self._push(
            request_id, lambda sent_us: encode_request(request_id, self.client_id, planes, sent_us), len(planes)
        )

    def planes_buffer(self, slot: int, count: int) -> np.ndarray:
        """Where to encode the planes `[count, C, H, W]` of slot's next request (part of the message)."""
        buffer = self._buffers.get(slot)
        if buffer is None:
            if self.planes_shape is None:
                raise ValueError("planes_buffer needs a client made with planes_shape=(C, H, W)")
            buffer = self._buffers[slot] = RequestBuffer(self.client_id, self.planes_shape, count)
        return buffer.planes(count)

    def submit_buffer(self, slot: int, count: int) -> int:
        """Send the first `count` planes written into slot's buffer; the request's id. The request goes out
        with the next `receive_reply`'s BLPOP, in one write (self-play asks for a reply right after)."""
        request_id = self._take_id()
        buffer = self._buffers[slot]
        return self._push(request_id, lambda sent_us: buffer.message(request_id, count, sent_us), count, hold=True)

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _push(
        self, request_id: int, encode: Callable[[int], bytes | memoryview], positions: int, hold: bool = False
    ) -> int:
        """Stamp and push a new request (with `hold`, with the next BLPOP); while Redis is away it is kept, to
        be pushed once it is back."""
        try:
            message = encode(self._clock.now_us())
            self._pending[request_id] = _Pending(message, positions, time.monotonic())
            # Not waited for: its reply is read with the next BLPOP's.
            self._channel.rpush_later(self._requests_key, message, hold=hold)
        except redis_lib.RedisError as e:
            if not is_outage(e):
                raise
            if request_id not in self._pending:
                self._pending[request_id] = _Pending(encode(0), positions, NEVER)
            self._went_away()
        return request_id

    def receive(self, request_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Wait for the reply to a submitted request (keeping replies to other pending ones)."""
        logits, values, _ = self.receive_reply(request_id)
        return logits, values

    def receive_reply(self, request_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Wait for (logits, values, weights version) of a submitted request."""
        if request_id in self._arrived:
            return self._take(request_id)
        if request_id not in self._pending:
            raise ValueError(f"request {request_id} was not submitted by this client or was already received")
        give_up = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            try:
                self._resend_overdue()
                raw = self._channel.blpop(self._reply_key, self._wait_s(give_up))
            except redis_lib.RedisError as e:
                if not is_outage(e):
                    raise
                self._went_away()
                self._wait_for_redis(give_up, e)
                continue
            refused = self._channel.take_errors()  # pushes that Redis refused (OOM, read-only)
            if raw is not None:
                self._accept(raw)
            if refused:
                if not is_outage(refused[0]):
                    raise refused[0]
                self._went_away()  # which push failed is not known: each outstanding one is looked for again
                if request_id not in self._arrived:
                    self._wait_for_redis(give_up, refused[0])
                    continue
            self._backoff_s = 0.0
            if request_id in self._arrived:
                return self._take(request_id)
            if raw is None and give_up is not None and time.monotonic() >= give_up:
                raise AzjobsError(
                    f"no inference reply within {self.timeout_s:g} s: "
                    f"is `azjobs gpu-serve` running for run {self.run!r}?"
                )

    def _wait_s(self, give_up: float | None) -> float:
        """Seconds to block: until the next resend or the time limit, whichever comes first."""
        now = time.monotonic()
        until = min(p.sent_at for p in self._pending.values()) + self.resend_after_s
        if give_up is not None:
            until = min(until, give_up)
        return max(0.01, until - now)

    def _resend_overdue(self) -> None:
        """Re-stamp each overdue request's waiting copy in place, or push it again if it was taken."""
        now = time.monotonic()
        for pending in self._pending.values():
            if now - pending.sent_at >= self.resend_after_s:
                fresh = restamped(pending.message, self._clock.now_us())
                pushed = self._refresh_or_push(keys=[self._requests_key], args=[bytes(pending.message), fresh])
                pending.message, pending.sent_at = fresh, now
                if pushed:
                    self.resent += 1
                else:
                    self.refreshed += 1

    def _went_away(self) -> None:
        """Redis failed a command: once it answers, every outstanding request is looked for again
        (a restarted Redis lost them), on a clock measured again (it may run elsewhere after a failover)."""
        if not self._backoff_s:
            self.outages += 1
            self._backoff_s = BACKOFF_S[0]
        for pending in self._pending.values():
            pending.sent_at = NEVER
        self._clock.forget()

    def _wait_for_redis(self, give_up: float | None, error: Exception) -> None:
        """Sleep the backoff (doubling up to its cap), or give up if the time limit would pass first."""
        if give_up is not None and time.monotonic() + self._backoff_s >= give_up:
            raise AzjobsError(
                f"Redis did not come back within {self.timeout_s:g} s ({error.__class__.__name__}): "
                f"is the run's Redis running and reachable?"
            )
        time.sleep(self._backoff_s)
        self._backoff_s = min(2 * self._backoff_s, BACKOFF_S[1])

    def _accept(self, message: bytes) -> None:
        if not isinstance(message, bytes):
            raise AzjobsError("the inference client needs a Redis client made with decode_responses=False")
        try:
            reply = decode_reply(message)
        except WireError:
            self.dropped += 1
            return
        pending = self._pending.pop(reply.request_id, None)
        if pending is None:  # an answer to an earlier copy of a resent request, already received
            self.dropped += 1
            return
        if reply.logits.shape[0] != pending.positions:
            got = reply.logits.shape[0]
            raise AzjobsError(f"inference reply has {got} positions for a request of {pending.positions}")
        # Copies: the caller owns writable arrays, as from a local evaluator.
        self._arrived[reply.request_id] = (reply.logits.copy(), reply.values.copy(), reply.version)

    def _take(self, request_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        answer = self._arrived.pop(request_id)
        self.last_version = answer[2]
        return answer

    def close(self) -> None:
        """Forget pending requests and delete the reply list."""
        self._pending.clear()
        self._arrived.clear()
        with contextlib.suppress(redis_lib.RedisError):  # Redis away: the list expires by itself
            self.redis.delete(self._reply_key)
        self._channel.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
