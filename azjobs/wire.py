"""The binary messages between search clients and inference servers: a versioned header plus raw arrays.

Request: header `<4sBBQIHHHBQB>` (magic, format version, kind=1, request id, K, C, H, W, id length,
send time in microseconds since the epoch on Redis' clock, `azjobs.cluster.clock`, planes encoding), then the
client id (printable ASCII, at most MAX_CLIENT_ID bytes), then the planes `[K, C, H, W]` uint8: as they
are (PLANES_RAW), or, when every value is 0 or 1 (what the shipped games encode), as bits
(PLANES_BITS: `np.packbits` of the flattened planes, most significant bit first, zero bits up to a
whole byte), an eighth of the bytes. Reply: header `<4sBBQqII2x>` (magic, format version, kind=2,
request id, weights version, K, A, padding to 32 bytes so the floats are aligned), then logits
`[K, A]` and values `[K]`, float32 little-endian. Nothing is ever pickled; a malformed message raises
`WireError` with a short reason. Version 2 added the send time (for the servers' queue-wait figure);
version 3 takes it on Redis' clock, where version 2 took the sender's, and servers drop a request
whose send time is older than REQUEST_TTL_S (its sender re-stamps the copy waiting in the list every
resend period, so only a gone sender's requests grow that old); version 4 added the planes encoding.
A message of an older version is refused with a message to update everywhere.
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from azjobs.errors import AzjobsError

MAGIC = b"AZJW"
FORMAT_VERSION = 4
KIND_REQUEST = 1
KIND_REPLY = 2
PLANES_RAW = 0  # planes encoding: one byte per value
PLANES_BITS = 1  # planes encoding: one bit per value, every value 0 or 1
MAX_CLIENT_ID = 64  # bytes; the id becomes part of a Redis key name
REQUEST_TTL_S = 60.0  # a request stamped longer ago (Redis' clock) is stale; senders re-stamp well within it

_PREFIX = struct.Struct("<4sBB")  # magic, format version, kind
_REQUEST = struct.Struct("<4sBBQIHHHBQB")  # ... request id, K, C, H, W, client id length, send time (us), encoding
_SENT_AT = 25  # offset of the request header's send time
_REPLY = struct.Struct("<4sBBQqII2x")  # ... request id, weights version, K, A (32 bytes)
_FLOAT32 = np.dtype("<f4")
_PRINTABLE = re.compile(rb"[\x21-\x7e]+")  # printable ASCII, no spaces (checked per request: a regex, not a loop)
_KNOWN_IDS: dict[bytes, str] = {}  # client ids of requests decoded already, checked once each
_KNOWN_IDS_MAX = 4096  # forgotten all at once past this many


class WireError(AzjobsError, ValueError):
    """A message that is not a well-formed request or reply of this format version."""


class Request(NamedTuple):
    """A decoded request (a named tuple: servers decode thousands a second, a dataclass costs more)."""

    request_id: int
    client_id: str
    body: np.ndarray  # the planes as sent (see `encoding`), a read-only view of the message bytes
    sent_us: int  # when the sender last (re)stamped it, microseconds since the epoch on Redis' clock
    positions: int  # K
    shape: tuple[int, int, int]  # (C, H, W)
    encoding: int = PLANES_RAW

    @property
    def planes(self) -> np.ndarray:
        """The planes `[K, C, H, W]` uint8: a view of the message (raw), or unpacked (bits)."""
        if self.encoding == PLANES_RAW:
            return self.body.reshape(self.positions, *self.shape)
        return _unpacked(self.body, self.positions * math.prod(self.shape)).reshape(self.positions, *self.shape)

    def write_planes(self, out: np.ndarray) -> None:
        """The planes into `out`, `[K, C, H, W]` uint8 or its values flat (a batch buffer's rows)."""
        flat = out.reshape(-1)
        if self.encoding == PLANES_RAW:
            flat[:] = self.body
        elif flat.size == 8 * self.body.size:  # whole bytes unpack faster without `count` (numpy's slower path)
            flat[:] = np.unpackbits(self.body)
        else:
            flat[:] = np.unpackbits(self.body, count=flat.size)


def _unpacked(bits: np.ndarray, count: int) -> np.ndarray:
    return np.unpackbits(bits) if count == 8 * len(bits) else np.unpackbits(bits, count=count)


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
    """One request for the evaluation of planes `[K, C, H, W]` uint8 (sent as bits when they are 0/1)."""
    if planes.dtype != np.uint8 or planes.ndim != 4 or len(planes) == 0:
        raise WireError(f"planes must be [K, C, H, W] uint8 with K > 0, got {planes.dtype} {planes.shape}")
    cid = _check_client_id(client_id)
    k, c, h, w = planes.shape
    sent = now_us() if sent_us is None else sent_us
    encoding = _encoding(planes)
    body = np.packbits(planes.reshape(-1)) if encoding == PLANES_BITS else np.ascontiguousarray(planes)
    header = _pack(_REQUEST, KIND_REQUEST, request_id, k, c, h, w, len(cid), sent, encoding)
    return b"".join((header, cid, body.data.cast("B")))


def _encoding(planes: np.ndarray) -> int:
    """PLANES_BITS when every value is 0 or 1 (a max over the planes: a few us per 256 positions)."""
    return PLANES_BITS if planes.max() <= 1 else PLANES_RAW


def body_size(k: int, shape: tuple[int, int, int], encoding: int) -> int:
    """Bytes of the planes of a request of k positions."""
    values = k * math.prod(shape)
    return values if encoding == PLANES_RAW else -(-values // 8)


class RequestBuffer:
    """An outgoing request built in place, so that leaves are encoded once, straight into the message.

    `planes(k)` is the writable `[k, C, H, W]` body of the next request; `message(request_id, k)`
    writes the header in front of it and returns the message as a view of the buffer (valid until
    the buffer is written again: a sender keeps one buffer per request in flight). Planes that are all
    0 or 1 go as bits instead, packed into a second message buffer of the same header and client id.
    """

    def __init__(self, client_id: str, planes_shape: tuple[int, int, int], capacity: int = 64) -> None:
        self._cid = _check_client_id(client_id)
        c, h, w = planes_shape
        self.planes_shape = (int(c), int(h), int(w))
        self._body = _REQUEST.size + len(self._cid)  # offset of the planes
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self.capacity = capacity
        self._data = bytearray(self._body + body_size(capacity, self.planes_shape, PLANES_RAW))
        self._data[_REQUEST.size : self._body] = self._cid
        self._planes = np.frombuffer(self._data, np.uint8, offset=self._body).reshape(capacity, *self.planes_shape)
        self._bits = bytearray(self._body + body_size(capacity, self.planes_shape, PLANES_BITS))
        self._bits[_REQUEST.size : self._body] = self._cid
        self._packed = np.frombuffer(self._bits, np.uint8, offset=self._body)

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
        planes = self._planes[:k]
        encoding = _encoding(planes)
        data = self._data
        if encoding == PLANES_BITS:
            data = self._bits
            self._packed[: body_size(k, self.planes_shape, PLANES_BITS)] = np.packbits(planes.reshape(-1))
        _pack_into(data, request_id, k, *self.planes_shape, len(self._cid), sent, encoding)
        return memoryview(data)[: self._body + body_size(k, self.planes_shape, encoding)]


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


def _check_prefix(data: bytes | bytearray, kind: int, header: struct.Struct) -> None:
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
    _, _, _, request_id, k, c, h, w, id_len, sent_us, encoding = _REQUEST.unpack_from(data)
    if k == 0:
        raise WireError("request with no positions")
    if k > max_positions:
        raise WireError(f"oversized request: {k} positions, at most {max_positions}")
    if (c, h, w) != tuple(planes_shape):
        raise WireError(f"planes {c}x{h}x{w}, this run's game uses {'x'.join(map(str, planes_shape))}")
    if not 1 <= id_len <= MAX_CLIENT_ID:
        raise WireError(f"client id length {id_len} outside 1..{MAX_CLIENT_ID}")
    if encoding not in (PLANES_RAW, PLANES_BITS):
        raise WireError(f"unknown planes encoding {encoding}")
    start = _REQUEST.size + id_len
    _check_size(data, start + body_size(k, (c, h, w), encoding))
    body = np.frombuffer(data, dtype=np.uint8, offset=start)
    return Request(request_id, _client_id(bytes(data[_REQUEST.size : start])), body, sent_us, k, (c, h, w), encoding)


class RequestDecoder:
    """`decode_request` with the run's limits bound once, for a server decoding thousands of requests a second:
    a well-formed request passes one combined check; any other is handed to `decode_request`, whose WireError
    says what is wrong with it."""

    def __init__(self, *, max_positions: int, planes_shape: tuple[int, int, int]) -> None:
        self.max_positions = max_positions
        c, h, w = (int(d) for d in planes_shape)
        self.planes_shape = (c, h, w)
        self._values = c * h * w  # per position

    def __call__(self, data: bytes) -> Request:
        if len(data) >= _REQUEST.size:
            magic, version, kind, request_id, k, c, h, w, id_len, sent_us, encoding = _REQUEST.unpack_from(data)
            start = _REQUEST.size + id_len
            values = k * self._values
            end = start + (values if encoding == PLANES_RAW else (values + 7) >> 3)
            if (
                magic == MAGIC
                and version == FORMAT_VERSION
                and kind == KIND_REQUEST
                and 0 < k <= self.max_positions
                and (c, h, w) == self.planes_shape
                and 0 < id_len <= MAX_CLIENT_ID
                and encoding <= PLANES_BITS
                and len(data) == end
            ):
                raw_id = data[_REQUEST.size : start]
                client_id = _KNOWN_IDS.get(raw_id) or _client_id(raw_id)
                body = np.frombuffer(data, np.uint8, end - start, start)
                return Request(request_id, client_id, body, sent_us, k, self.planes_shape, encoding)
        return decode_request(data, max_positions=self.max_positions, planes_shape=self.planes_shape)


def _client_id(raw: bytes) -> str:
    client_id = _KNOWN_IDS.get(raw)
    if client_id is None:
        try:
            client_id = raw.decode("ascii")
        except UnicodeDecodeError:
            raise WireError("client id is not ASCII") from None
        _check_client_id(client_id)
        if len(_KNOWN_IDS) >= _KNOWN_IDS_MAX:
            _KNOWN_IDS.clear()
        _KNOWN_IDS[raw] = client_id
    return client_id


def encode_reply(request_id: int, version: int, logits: np.ndarray, values: np.ndarray) -> bytes:
    """The reply to one request: logits `[K, A]` and values `[K]` (stored as float32)."""
    return b"".join(reply_parts(request_id, version, logits, values))


def reply_parts(
    request_id: int, version: int, logits: np.ndarray, values: np.ndarray
) -> tuple[bytes, memoryview, memoryview]:
    """The reply as its three consecutive parts (header, logits, values), the arrays not copied when they
    are already contiguous float32: a sender can write them to a socket without joining them first."""
    return batch_reply_parts([request_id], [len(logits)], version, logits, values)[0]


def batch_reply_parts(
    request_ids: Sequence[int], positions: Sequence[int], version: int, logits: np.ndarray, values: np.ndarray
) -> list[tuple[bytes, memoryview, memoryview]]:
    """`reply_parts` of consecutive requests (of so many positions each) whose outputs are consecutive rows
    of one batch's logits `[N, A]` and values `[N]`: one conversion for the batch, then slices of it."""
    if logits.ndim != 2 or values.shape != (len(logits),) or sum(positions) != len(logits):
        raise WireError(
            f"logits must be [K, A] and values [K], got {logits.shape} and {values.shape}"
            f" for {sum(positions)} positions"
        )
    a = logits.shape[1]
    logits_bytes = np.ascontiguousarray(logits, dtype=_FLOAT32).data.cast("B")
    values_bytes = np.ascontiguousarray(values, dtype=_FLOAT32).data.cast("B")
    parts: list[tuple[bytes, memoryview, memoryview]] = []
    start, pack = 0, _REPLY.pack
    try:
        for request_id, k in zip(request_ids, positions):
            end = start + k
            header = pack(MAGIC, FORMAT_VERSION, KIND_REPLY, request_id, version, k, a)
            parts.append((header, logits_bytes[4 * a * start : 4 * a * end], values_bytes[4 * start : 4 * end]))
            start = end
    except struct.error as e:  # a request id or version out of its field's range
        raise WireError(f"cannot encode header: {e}") from None
    return parts


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
