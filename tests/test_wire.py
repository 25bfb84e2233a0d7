"""The binary wire format: round trips, zero-copy decoding, planes as bits, and every malformed message rejected."""

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


@pytest.mark.parametrize("old", [1, 2, 3])
def test_a_message_of_an_older_format_is_refused_with_the_fix(old: int) -> None:
    # Version 2 stamped requests with the sender's clock, which servers on other hosts cannot compare;
    # version 3 had no planes encoding.
    with pytest.raises(WireError, match=f"format version {old}, expected 4: update azjobs everywhere"):
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


def _binary(k: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(100 + k).integers(0, 2, size=(k, *shape), dtype=np.uint8)  # what games encode


@pytest.mark.parametrize("k", [1, 3, 8])  # 18, 54 (not whole bytes) and 144 values
def test_planes_of_zeros_and_ones_go_as_bits(k: int) -> None:
    planes = _binary(k)
    data = encode_request(4, "c", planes, sent_us=7)
    assert len(data) == 34 + 1 + -(-k * 18 // 8)  # the header, the client id, one bit per value
    request = _decode(data)
    assert request.encoding == wire.PLANES_BITS and request.positions == k and request.sent_us == 7
    assert np.array_equal(request.planes, planes)
    rows = np.full((k + 2, *SHAPE), 9, np.uint8)
    request.write_planes(rows[1 : k + 1])
    assert np.array_equal(rows[1 : k + 1], planes) and (rows[0] == 9).all() and (rows[k + 1] == 9).all()


def test_other_planes_go_as_bytes() -> None:
    planes = _planes(4)
    assert planes.max() == 2
    request = _decode(encode_request(1, "c", planes))
    assert request.encoding == wire.PLANES_RAW and np.array_equal(request.planes, planes)
    rows = np.zeros((4, *SHAPE), np.uint8)
    request.write_planes(rows)
    assert np.array_equal(rows, planes)


def test_a_request_buffer_sends_bits_when_it_can() -> None:
    buffer = RequestBuffer("worker-7", SHAPE, capacity=2)
    for request_id, planes in ((1, _binary(2)), (2, _planes(2)), (3, _binary(5)), (4, _binary(1))):
        buffer.planes(len(planes))[:] = planes
        message = buffer.message(request_id, len(planes), sent_us=42)
        assert bytes(message) == encode_request(request_id, "worker-7", planes, sent_us=42)
        assert np.array_equal(_decode(bytes(message)).planes, planes)


def test_a_reply_of_a_whole_batch_is_slices_of_it() -> None:
    rng = np.random.default_rng(3)
    logits, values = rng.normal(size=(6, 9)).astype(np.float32), rng.uniform(-1, 1, 6).astype(np.float32)
    parts = wire.batch_reply_parts([10, 11, 12], [1, 3, 2], 5, logits, values)
    for (header, row_logits, row_values), (request_id, start, end) in zip(parts, [(10, 0, 1), (11, 1, 4), (12, 4, 6)]):
        data = b"".join((header, row_logits, row_values))
        assert data == encode_reply(request_id, 5, logits[start:end], values[start:end])
        assert np.shares_memory(np.frombuffer(row_logits, np.float32), logits)
    with pytest.raises(WireError):
        wire.batch_reply_parts([1], [5], 5, logits, values)


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
    "unknown planes encoding": (_header_with(GOOD, 33, "<B", 2), "encoding"),
    "truncated bits": (encode_request(9, "client", np.ones((3, *SHAPE), np.uint8))[:-1], "truncated"),
    "bits too long": (encode_request(9, "client", np.ones((3, *SHAPE), np.uint8)) + b"\x00", "oversized"),
    "pickle": (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", "truncated"),
    "pickle-sized junk": (b"\x80\x04" + bytes(40), "magic"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_REQUESTS))
def test_malformed_request_is_rejected(name: str) -> None:
    data, reason = MALFORMED_REQUESTS[name]
    with pytest.raises(WireError, match=reason):
        _decode(data)


@pytest.mark.parametrize("name", sorted(MALFORMED_REQUESTS))
def test_the_servers_bound_decoder_rejects_what_decode_request_does(name: str) -> None:
    data, reason = MALFORMED_REQUESTS[name]
    with pytest.raises(WireError, match=reason):
        wire.RequestDecoder(max_positions=100, planes_shape=SHAPE)(data)


@pytest.mark.parametrize("planes", [_planes(3), np.ones((3, *SHAPE), np.uint8)], ids=["bytes", "bits"])
def test_the_servers_bound_decoder_reads_what_decode_request_does(planes: np.ndarray) -> None:
    data = encode_request(9, "client", planes, sent_us=123)
    got, want = wire.RequestDecoder(max_positions=100, planes_shape=SHAPE)(data), _decode(data)
    assert (got.request_id, got.client_id, got.sent_us, got.positions, got.shape, got.encoding) == (
        want.request_id,
        want.client_id,
        want.sent_us,
        want.positions,
        want.shape,
        want.encoding,
    )
    np.testing.assert_array_equal(got.planes, planes)


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
