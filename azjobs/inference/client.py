"""The remote evaluator: sends planes to the run's inference servers through Redis and waits for the reply.

Each client owns a reply list (`keys.reply(run, client_id)`). A request whose reply does not come
within `resend_after_s` (a server died holding it) is pushed again under the same id, so workers
stall while no server runs and resume by themselves; a reply whose id is not pending (the answer to
an earlier copy of a resent request) is dropped, so each request is answered once, to its sender.
Self-play keeps several requests in flight (`planes_buffer`, `submit_buffer`, `receive_reply`: the
`AsyncEvaluator` of `azjobs.search.selfplay`), each built in place in a buffer of its own slot.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from dataclasses import dataclass

import numpy as np
from redis import Redis

from azjobs import keys
from azjobs.errors import AzjobsError
from azjobs.inference.channel import ListChannel
from azjobs.wire import MAX_CLIENT_ID, RequestBuffer, WireError, decode_reply, encode_request


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
    sent_at: float  # time.monotonic() of the last push


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
        self.redis = redis
        self.planes_shape = planes_shape  # (C, H, W) of the game: needed by planes_buffer only
        self.run = run
        self.client_id = client_id or make_client_id()
        self.resend_after_s = resend_after_s
        self.timeout_s = timeout_s
        self.last_version = -1  # weights version of the last reply; -1 before any
        self.resent = 0  # requests pushed again after resend_after_s
        self.dropped = 0  # replies discarded: stale duplicates or malformed
        # Ids grow with time, so a restarted client reusing its id never mistakes an old reply for a new one.
        self._next_id = time.time_ns()
        self._pending: dict[int, _Pending] = {}
        self._arrived: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self._buffers: dict[int, RequestBuffer] = {}  # slot -> the buffer its requests are built in
        self._reply_key = keys.reply(run, self.client_id)
        self._requests_key = keys.requests(run)
        self._channel = ListChannel(redis)  # the request and reply lists' own connection

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """planes `[K, C, H, W]` uint8 -> (logits `[K, A]` float32, values `[K]` float32)."""
        return self.receive(self.submit(planes))

    __call__ = evaluate

    def submit(self, planes: np.ndarray) -> int:
        """Send one request without waiting; its id, for `receive`."""
        request_id = self._take_id()
        return self._push(request_id, encode_request(request_id, self.client_id, planes), len(planes))

    def planes_buffer(self, slot: int, count: int) -> np.ndarray:
        """Where to encode the planes `[count, C, H, W]` of slot's next request (part of the message)."""
        buffer = self._buffers.get(slot)
        if buffer is None:
            if self.planes_shape is None:
                raise ValueError("planes_buffer needs a client made with planes_shape=(C, H, W)")
            buffer = self._buffers[slot] = RequestBuffer(self.client_id, self.planes_shape, count)
        return buffer.planes(count)

    def submit_buffer(self, slot: int, count: int) -> int:
        """Send the first `count` planes written into slot's buffer; the request's id."""
        request_id = self._take_id()
        return self._push(request_id, self._buffers[slot].message(request_id, count), count)

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _push(self, request_id: int, message: bytes | memoryview, positions: int) -> int:
        self._pending[request_id] = _Pending(message, positions, time.monotonic())
        self._channel.rpush(self._requests_key, message)
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
            self._resend_overdue()
            raw = self._channel.blpop(self._reply_key, self._wait_s(give_up))
            if raw is not None:
                self._accept(raw)
                if request_id in self._arrived:
                    return self._take(request_id)
            elif give_up is not None and time.monotonic() >= give_up:
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
        now = time.monotonic()
        for pending in self._pending.values():
            if now - pending.sent_at >= self.resend_after_s:
                self._channel.rpush(self._requests_key, pending.message)
                pending.sent_at = now
                self.resent += 1

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
        self.redis.delete(self._reply_key)
        self._channel.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
