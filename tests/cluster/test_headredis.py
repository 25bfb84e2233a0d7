"""`azjobs redis`: the head's Redis with a password nobody sees, protected mode, persistence, no eviction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from azjobs.cluster import embedded, headredis

PASSWORD = 'p"w \\ d$(x)'  # quotes, spaces and backslashes must reach Redis as they are


def wait_ping(url: str, timeout_s: float = 20.0) -> redis.Redis:
    deadline = time.monotonic() + timeout_s
    while True:
        client = redis.Redis.from_url(url)
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "azjobs redis did not answer"
            time.sleep(0.05)


@pytest.fixture
def head(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    port = embedded.free_port()
    data = tmp_path / "data"
    log = open(tmp_path / "redis.log", "wb")
    env = dict(os.environ, AZJOBS_REDIS_PASSWORD=PASSWORD)
    process = subprocess.Popen(
        [sys.executable, "-m", "azjobs", "redis", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, port, data
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def url(port: int, password: str | None = PASSWORD) -> str:
    from urllib.parse import quote

    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


def test_head_redis(head: tuple[subprocess.Popen, int, Path], tmp_path: Path) -> None:
    process, port, data = head
    client = wait_ping(url(port))
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url(port, None)).ping()
    config = {k: client.config_get(k)[k] for k in ("protected-mode", "appendonly", "maxmemory-policy", "dir")}
    assert config == {
        "protected-mode": "yes",
        "appendonly": "yes",
        "maxmemory-policy": "noeviction",
        "dir": str(data.resolve()),
    }
    assert client.config_get("save")["save"] == headredis.SNAPSHOTS
    # The password is on no command line and in no output.
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    assert PASSWORD.encode() not in cmdline
    assert b"redis-server" in cmdline  # the process became redis-server
    client.set("kept", "yes")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log = (tmp_path / "redis.log").read_text()
    assert PASSWORD not in log and "password required" in log

    # Started again on the same folder: the data is still there (append-only file).
    again = subprocess.Popen(
        [sys.executable, "-m", "azjobs", "redis", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data)],
        env=dict(os.environ, AZJOBS_REDIS_PASSWORD=PASSWORD),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_ping(url(port)).get("kept") == b"yes"
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)


def test_refuses_the_lan_without_a_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AZJOBS_REDIS_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "azjobs", "redis", "--bind", "0.0.0.0", "--dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: refusing to serve Redis on 0.0.0.0 without a password: set $AZJOBS_REDIS_PASSWORD "
        "or pass --password-file (or bind only 127.0.0.1)"
    ]


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    done = subprocess.run(
        [sys.executable, "-m", "azjobs", "redis", "--password-file", str(tmp_path / "pw"), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "is empty" in done.stderr


def test_config_quotes_everything() -> None:
    text = headredis.config(bind=["10.0.0.1"], port=1, data_dir=Path("/d"), password='a"b')
    assert 'requirepass "\\x61\\x22\\x62"' in text and 'a"b' not in text
