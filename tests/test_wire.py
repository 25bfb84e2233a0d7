"""The binary wire format: round trips, zero-copy decoding, and every malformed message rejected."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from azjobs import wire
from azjobs.wire import RequestBuffer, WireError, decode_reply, decode_request, encode_reply, encode_request

SHAPE = (2, 3, 3)


def _planes(k: int) -> np.ndarray:
    return np.random.default_rng(k).integers(0, 3, size=(k, *SHAPE), dtype=np.uint8)  # [K, C, H, W]


def _decode(data: bytes, max_positions: int = 100, shape: tuple[int, int, int] = SHAPE) -> wire.Request:
    return decode_request(data, max_positions=max_positions, planes_shape=shape)


def test_request_round_trip() -> None:
    planes = _planes(5)
    request = _decode(encode_request(2**64 - 1, "host-12-ab", planes, sent_us=1_700_000_000_123_456))
    assert request.request_id == 2**64 - 1 and request.client_id == "host-12-ab"
    assert request.planes.dtype == np.uint8 and np.array_equal(request.planes, planes)
    assert request.sent_us == 1_700_000_000_123_456


def test_request_carries_its_send_time() -> None:
    before = wire.now_us()
    request = _decode(encode_request(1, "c", _planes(1)))
    assert before <= request.sent_us <= wire.now_us()


def test_request_built_in_place() -> None:
    buffer = RequestBuffer("worker-7", SHAPE, capacity=4)
    for request_id, k in ((5, 3), (6, 4), (7, 9), (8, 1)):  # the third outgrows the buffer
        planes = _planes(k)
        body = buffer.planes(k)
        body[:] = planes  # what search's encoder does: write straight into the message
        message = buffer.message(request_id, k, sent_us=42)
        assert np.shares_memory(body, np.frombuffer(message, np.uint8))
        assert bytes(message) == encode_request(request_id, "worker-7", planes, sent_us=42)
        request = _decode(bytes(message))
        assert (request.request_id, request.client_id, request.sent_us) == (request_id, "worker-7", 42)
        assert np.array_equal(request.planes, planes)
    assert buffer.capacity >= 9


@pytest.mark.parametrize("k", [0, 5])
def test_request_buffer_refuses_sizes_it_does_not_hold(k: int) -> None:
    buffer = RequestBuffer("c", SHAPE, capacity=4)
    with pytest.raises(WireError):
        buffer.message(1, k)


@pytest.mark.parametrize("old", [1, 2])
def test_a_message_of_an_older_format_is_refused_with_the_fix(old: int) -> None:
    # Version 2 stamped requests with the sender's clock, which servers on other hosts cannot compare.
    with pytest.raises(WireError, match=f"format version {old}, expected 3: update azjobs everywhere"):
        _decode(_header_with(GOOD, 4, "<B", old))


def test_a_restamped_request_differs_in_its_send_time_only() -> None:
    message = encode_request(9, "c", _planes(2), sent_us=5)
    again = wire.restamped(memoryview(message), 1_800_000_000_000_000)
    first, second = _decode(message), _decode(again)
    assert (second.request_id, second.client_id, second.sent_us) == (9, "c", 1_800_000_000_000_000)
    np.testing.assert_array_equal(first.planes, second.planes)
    assert len(again) == len(message) and first.sent_us == 5
    with pytest.raises(WireError):
        wire.restamped(b"junk", 1)


def test_request_planes_are_not_copied() -> None:
    data = encode_request(1, "c", _planes(4))
    planes = _decode(data).planes
    assert np.shares_memory(planes, np.frombuffer(data, dtype=np.uint8))
    assert not planes.flags.writeable


def test_non_contiguous_planes_are_encoded_in_order() -> None:
    planes = _planes(6)[::2]
    assert np.array_equal(_decode(encode_request(3, "c", planes)).planes, planes)


def test_reply_round_trip() -> None:
    rng = np.random.default_rng(0)
    logits, values = rng.normal(size=(4, 9)).astype(np.float32), rng.uniform(-1, 1, 4).astype(np.float32)
    data = encode_reply(77, 12, logits, values)
    reply = decode_reply(data)
    assert (reply.request_id, reply.version) == (77, 12)
    assert np.array_equal(reply.logits, logits) and np.array_equal(reply.values, values)
    assert reply.logits.dtype == np.float32 and reply.logits.flags.aligned
    assert np.shares_memory(reply.values, np.frombuffer(data, dtype=np.uint8))


def test_reply_converts_float64_outputs() -> None:
    reply = decode_reply(encode_reply(1, -1, np.ones((2, 3)), np.zeros(2)))
    assert reply.logits.dtype == np.float32 and reply.version == -1


def _header_with(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


GOOD = encode_request(9, "client", _planes(3))
# name: (message, a word of the reason given)
MALFORMED_REQUESTS = {
    "empty": (b"", "truncated"),
    "truncated header": (GOOD[:10], "truncated"),
    "truncated body": (GOOD[:-1], "truncated"),
    "trailing bytes": (GOOD + b"\x00", "oversized"),
    "bad magic": (b"XXXX" + GOOD[4:], "magic"),
    "bad format version": (_header_with(GOOD, 4, "<B", 99), "version"),
    "reply kind": (_header_with(GOOD, 5, "<B", wire.KIND_REPLY), "kind"),
    "no positions": (_header_with(GOOD, 14, "<I", 0)[: len(GOOD) - 3 * 18], "no positions"),
    "too many positions": (encode_request(9, "client", _planes(101)), "oversized"),
    "wrong planes shape": (encode_request(9, "client", np.zeros((3, 2, 6, 7), np.uint8)), "planes"),
    "id length zero": (_header_with(GOOD, 24, "<B", 0), "client id"),
    "id length too long": (_header_with(GOOD, 24, "<B", 65), "client id"),
    "non-ascii id": (GOOD.replace(b"client", b"cli\xffnt"), "ASCII"),
    "id with space": (GOOD.replace(b"client", b"cli nt"), "ASCII"),
    "pickle": (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", "truncated"),
    "pickle-sized junk": (b"\x80\x04" + bytes(40), "magic"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_REQUESTS))
def test_malformed_request_is_rejected(name: str) -> None:
    data, reason = MALFORMED_REQUESTS[name]
    with pytest.raises(WireError, match=reason):
        _decode(data)


def test_a_reply_is_not_a_request_and_vice_versa() -> None:
    reply = encode_reply(1, 1, np.zeros((1, 9)), np.zeros(1))
    with pytest.raises(WireError, match="kind"):
        _decode(reply)
    with pytest.raises(WireError, match="kind"):
        decode_reply(GOOD)


GOOD_REPLY = encode_reply(5, 3, np.zeros((2, 9)), np.zeros(2))
MALFORMED_REPLIES = {
    "truncated": GOOD_REPLY[:-4],
    "trailing": GOOD_REPLY + b"\x00" * 4,
    "bad magic": b"AZJX" + GOOD_REPLY[4:],
    "bad version": _header_with(GOOD_REPLY, 4, "<B", 1),
    "no positions": _header_with(GOOD_REPLY, 22, "<I", 0),
    "no actions": _header_with(GOOD_REPLY, 26, "<I", 0),
    "more positions than sent": _header_with(GOOD_REPLY, 22, "<I", 3),
    "short header": GOOD_REPLY[:20],
}


@pytest.mark.parametrize("name", sorted(MALFORMED_REPLIES))
def test_malformed_reply_is_rejected(name: str) -> None:
    with pytest.raises(WireError):
        decode_reply(MALFORMED_REPLIES[name])


@pytest.mark.parametrize(
    "request_id, client_id, planes",
    [
        (1, "", _planes(1)),
        (1, "x" * 65, _planes(1)),
        (1, "naïve", _planes(1)),
        (1, "c", _planes(1).astype(np.float32)),
        (1, "c", np.zeros((0, *SHAPE), np.uint8)),
        (1, "c", np.zeros(SHAPE, np.uint8)),
        (-1, "c", _planes(1)),
        (2**64, "c", _planes(1)),
    ],
)
def test_encode_refuses_what_cannot_be_decoded(request_id: int, client_id: str, planes: np.ndarray) -> None:
    with pytest.raises(WireError):
        encode_request(request_id, client_id, planes)


def test_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)
