"""The binary messages between search clients and inference servers: a versioned header plus raw arrays.

Request: header `<4sBBQIHHHBQ>` (magic, format version, kind=1, request id, K, C, H, W, id length,
send time in microseconds since the epoch on Redis' clock, `azjobs.cluster.clock`), then the client id (printable
ASCII, at most MAX_CLIENT_ID bytes), then planes `[K, C, H, W]` uint8. Reply: header `<4sBBQqII2x>`
(magic, format version, kind=2, request id, weights version, K, A, padding to 32 bytes so the floats
are aligned), then logits `[K, A]` and values `[K]`, float32 little-endian. Nothing is ever pickled;
a malformed message raises `WireError` with a short reason. Version 2 added the send time (for the
servers' queue-wait figure); version 3 takes it on Redis' clock, where version 2 took the sender's,
and servers drop a request whose send time is older than REQUEST_TTL_S (its sender re-stamps the
copy waiting in the list every resend period, so only a gone sender's requests grow that old). A
message of an older version is refused with a message to update everywhere.
"""

from __future__ import annotations

import math
import re
import struct
import time
from dataclasses import dataclass

import numpy as np

from azjobs.errors import AzjobsError

MAGIC = b"AZJW"
FORMAT_VERSION = 3
KIND_REQUEST = 1
KIND_REPLY = 2
MAX_CLIENT_ID = 64  # bytes; the id becomes part of a Redis key name
REQUEST_TTL_S = 60.0  # a request stamped longer ago (Redis' clock) is stale; senders re-stamp well within it

_PREFIX = struct.Struct("<4sBB")  # magic, format version, kind
_REQUEST = struct.Struct("<4sBBQIHHHBQ")  # ... request id, K, C, H, W, client id length, send time (us)
_SENT_AT = _REQUEST.size - 8  # offset of the request header's send time
_REPLY = struct.Struct("<4sBBQqII2x")  # ... request id, weights version, K, A (32 bytes)
_FLOAT32 = np.dtype("<f4")
_PRINTABLE = re.compile(rb"[\x21-\x7e]+")  # printable ASCII, no spaces (checked per request: a regex, not a loop)


class WireError(AzjobsError, ValueError):
    """A message that is not a well-formed request or reply of this format version."""


@dataclass(frozen=True)
class Request:
    request_id: int
    client_id: str
    planes: np.ndarray  # [K, C, H, W] uint8, a read-only view of the message bytes
    sent_us: int  # when the sender last (re)stamped it, microseconds since the epoch on Redis' clock


@dataclass(frozen=True)
class Reply:
    request_id: int
    version: int  # weights version that produced the outputs
    logits: np.ndarray  # [K, A] float32, a read-only view of the message bytes
    values: np.ndarray  # [K] float32


def _check_client_id(client_id: str) -> bytes:
    raw = client_id.encode("ascii", errors="replace")
    if not raw or len(raw) > MAX_CLIENT_ID:
        raise WireError(f"client id must be 1 to {MAX_CLIENT_ID} bytes, got {len(raw)}")
    if not client_id.isascii() or _PRINTABLE.fullmatch(raw) is None:
        raise WireError("client id must be printable ASCII without spaces")
    return raw


def now_us() -> int:
    """This host's wall clock, the default stamp: Redis' clock only on Redis' own host (tests, benches)."""
    return time.time_ns() // 1000


def restamped(message: bytes | memoryview, sent_us: int) -> bytes:
    """A copy of a request with another send time (a re-stamped copy of a waiting request)."""
    data = bytearray(message)
    _check_prefix(data, KIND_REQUEST, _REQUEST)
    struct.pack_into("<Q", data, _SENT_AT, sent_us)
    return bytes(data)


def encode_request(request_id: int, client_id: str, planes: np.ndarray, sent_us: int | None = None) -> bytes:
    """One request for the evaluation of planes `[K, C, H, W]` uint8."""
    if planes.dtype != np.uint8 or planes.ndim != 4 or len(planes) == 0:
        raise WireError(f"planes must be [K, C, H, W] uint8 with K > 0, got {planes.dtype} {planes.shape}")
    cid = _check_client_id(client_id)
    k, c, h, w = planes.shape
    sent = now_us() if sent_us is None else sent_us
    header = _pack(_REQUEST, KIND_REQUEST, request_id, k, c, h, w, len(cid), sent)
    return b"".join((header, cid, memoryview(np.ascontiguousarray(planes)).cast("B")))


class RequestBuffer:
    """An outgoing request built in place, so that leaves are encoded once, straight into the message.

    `planes(k)` is the writable `[k, C, H, W]` body of the next request; `message(request_id, k)`
    writes the header in front of it and returns the message as a view of the buffer (valid until
    the buffer is written again: a sender keeps one buffer per request in flight).
    """

    def __init__(self, client_id: str, planes_shape: tuple[int, int, int], capacity: int = 64) -> None:
        self._cid = _check_client_id(client_id)
        self.planes_shape = tuple(int(d) for d in planes_shape)
        self._body = _REQUEST.size + len(self._cid)  # offset of the planes
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self.capacity = capacity
        self._data = bytearray(self._body + capacity * math.prod(self.planes_shape))
        self._data[_REQUEST.size : self._body] = self._cid
        self._planes = np.frombuffer(self._data, np.uint8, offset=self._body).reshape(capacity, *self.planes_shape)

    def planes(self, k: int) -> np.ndarray:
        """Where to write the planes of the next request.  # [k, C, H, W] uint8"""
        if k > self.capacity:
            self._allocate(max(k, 2 * self.capacity))
        return self._planes[:k]

    def message(self, request_id: int, k: int, sent_us: int | None = None) -> memoryview:
        """The request of the first k planes written, header included."""
        if not 0 < k <= self.capacity:
            raise WireError(f"a request needs 1 to {self.capacity} positions, got {k}")
        sent = now_us() if sent_us is None else sent_us
        _pack_into(self._data, request_id, k, *self.planes_shape, len(self._cid), sent)
        return memoryview(self._data)[: self._body + k * math.prod(self.planes_shape)]


def _pack_into(data: bytearray, request_id: int, *fields: int) -> None:
    try:
        _REQUEST.pack_into(data, 0, MAGIC, FORMAT_VERSION, KIND_REQUEST, request_id, *fields)
    except struct.error as e:
        raise WireError(f"cannot encode header: {e}") from None


def _pack(header: struct.Struct, kind: int, *fields: int) -> bytes:
    try:
        return header.pack(MAGIC, FORMAT_VERSION, kind, *fields)
    except struct.error as e:  # a request id or dimension out of its field's range
        raise WireError(f"cannot encode header: {e}") from None


def _check_prefix(data: bytes, kind: int, header: struct.Struct) -> None:
    if len(data) < header.size:
        raise WireError(f"truncated header ({len(data)} bytes)")
    magic, version, got_kind = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad magic: not an azjobs message")
    if version != FORMAT_VERSION:
        raise WireError(f"format version {version}, expected {FORMAT_VERSION}: update azjobs everywhere")
    if got_kind != kind:
        raise WireError(f"message kind {got_kind}, expected {kind}")


def _check_size(data: bytes, expected: int) -> None:
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "oversized"
        raise WireError(f"{what} message: {len(data)} bytes, expected {expected}")


def decode_request(data: bytes, *, max_positions: int, planes_shape: tuple[int, int, int]) -> Request:
    """Parse a request, checking it against the run's planes shape; planes are not copied."""
    _check_prefix(data, KIND_REQUEST, _REQUEST)
    _, _, _, request_id, k, c, h, w, id_len, sent_us = _REQUEST.unpack_from(data)
    if k == 0:
        raise WireError("request with no positions")
    if k > max_positions:
        raise WireError(f"oversized request: {k} positions, at most {max_positions}")
    if (c, h, w) != tuple(planes_shape):
        raise WireError(f"planes {c}x{h}x{w}, this run's game uses {'x'.join(map(str, planes_shape))}")
    if not 1 <= id_len <= MAX_CLIENT_ID:
        raise WireError(f"client id length {id_len} outside 1..{MAX_CLIENT_ID}")
    start = _REQUEST.size + id_len
    _check_size(data, start + k * c * h * w)
    try:
        client_id = bytes(data[_REQUEST.size : start]).decode("ascii")
    except UnicodeDecodeError:
        raise WireError("client id is not ASCII") from None
    _check_client_id(client_id)
    planes = np.frombuffer(data, dtype=np.uint8, offset=start).reshape(k, c, h, w)
    return Request(request_id, client_id, planes, sent_us)


def encode_reply(request_id: int, version: int, logits: np.ndarray, values: np.ndarray) -> bytes:
    """The reply to one request: logits `[K, A]` and values `[K]` (stored as float32)."""
    return b"".join(reply_parts(request_id, version, logits, values))


def reply_parts(request_id: int, version: int, logits: np.ndarray,
                values: np.ndarray) -> tuple[bytes, memoryview, memoryview]:
    """The reply as its three consecutive parts (header, logits, values), the arrays not copied when they
    are already contiguous float32: a sender can write them to a socket without joining them first."""
    if logits.ndim != 2 or values.shape != (len(logits),):
        raise WireError(f"logits must be [K, A] and values [K], got {logits.shape} and {values.shape}")
    k, a = logits.shape
    header = _pack(_REPLY, KIND_REPLY, request_id, version, k, a)
    logits = np.ascontiguousarray(logits, dtype=_FLOAT32)
    values = np.ascontiguousarray(values, dtype=_FLOAT32)
    return header, memoryview(logits).cast("B"), memoryview(values).cast("B")


def decode_reply(data: bytes) -> Reply:
    """Parse a reply; the arrays are read-only views of `data`."""
    _check_prefix(data, KIND_REPLY, _REPLY)
    _, _, _, request_id, version, k, a = _REPLY.unpack_from(data)
    if k == 0 or a == 0:
        raise WireError(f"empty reply ({k} positions, {a} actions)")
    _check_size(data, _REPLY.size + 4 * (k * a + k))
    logits = np.frombuffer(data, dtype=_FLOAT32, count=k * a, offset=_REPLY.size).reshape(k, a)
    values = np.frombuffer(data, dtype=_FLOAT32, count=k, offset=_REPLY.size + 4 * k * a)
    return Reply(request_id, version, logits, values)
