"""Garbage pushed onto the request list with redis-cli: every piece is dropped and counted, and the
server keeps serving real requests, each answered to its sender."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import redis
from harness import NEVER_TRAINS, TINY, Roles, redis_cli, role_beat, wait_until

from azjobs import keys
from azjobs.games import get_game
from azjobs.wire import MAGIC, decode_reply, encode_request

GAME = get_game("tictactoe")


def garbage() -> list[bytes]:
    """Messages that are not well-formed requests for this run, each for a different reason."""
    planes = GAME.encode(np.stack([GAME.initial_state()] * 2))
    good = encode_request(7, "garbage-client", planes)
    huge = struct.pack("<4sBBQIHHHB", MAGIC, 1, 1, 9, 5_000_000, 2, 3, 3, 3) + b"abc"  # claims 5M positions
    other_game = encode_request(8, "garbage-client", np.zeros((2, 2, 6, 7), np.uint8))  # Connect Four planes
    return [
        b"hello",  # not even a header
        b"",
        np.random.default_rng(0).bytes(10_000),
        good[:-5],  # truncated
        good + b"extra",  # oversized
        huge,
        other_game,
        good.replace(b"garbage-client", b"garbage\x01lient"),  # a client id that is no key name
    ]


def push_with_redis_cli(socket: str, key: str, payload: bytes) -> None:
    # -x: the last argument is read from stdin, byte for byte.
    done = subprocess.run([redis_cli(), "-s", socket, "-x", "RPUSH", key], input=payload, capture_output=True)
    assert done.returncode == 0 and b"ERR" not in done.stdout, done.stdout + done.stderr


def ask(client: redis.Redis, run: str, request_id: int, client_id: str, planes: np.ndarray):  # type: ignore[no-untyped-def]
    client.rpush(keys.requests(run), encode_request(request_id, client_id, planes))
    popped = client.blpop([keys.reply(run, client_id)], timeout=60)
    assert popped is not None, "no reply within 60 s"
    return decode_reply(popped[1])


def test_garbage_on_the_request_list(roles: Roles, tmp_path: Path, redis_client: redis.Redis, redis_url: str) -> None:
    run_dir = tmp_path / "storage" / "gb"
    common = ["--run-dir", str(run_dir)]
    roles.start("trainer", ["train", *common, *TINY, *NEVER_TRAINS]).wait_for("published weights version 1")
    server = roles.start("gpu-serve", ["gpu-serve", *common])
    server.wait_for("serving run 'gb'")
    rng = np.random.default_rng(1)
    states = np.stack([GAME.initial_state()] * 3)
    states = GAME.play(states, rng.permutation(9)[:3])
    planes = GAME.encode(states)  # [3, 2, 3, 3], three different positions
    before = ask(redis_client, "gb", 1, "probe", planes)

    pieces = garbage()
    for piece in pieces:
        push_with_redis_cli(redis_url.removeprefix("unix://"), keys.requests("gb"), piece)
    after = ask(redis_client, "gb", 2, "probe", planes)  # queued behind the garbage: served all the same
    assert after.request_id == 2 and after.logits.shape == (3, 9)
    np.testing.assert_allclose(after.values, before.values, atol=1e-5)
    np.testing.assert_allclose(after.logits, before.logits, atol=1e-5)

    wait_until(
        lambda: role_beat(redis_client, "gb", "gpu-serve").get("dropped") == str(len(pieces)),
        f"the server's heartbeat to count {len(pieces)} dropped",
    )
    assert redis_client.llen(keys.requests("gb")) == 0
    assert server.process.poll() is None
    assert server.text().count("dropped a malformed request") == len(pieces)
    assert "Traceback" not in server.text()
