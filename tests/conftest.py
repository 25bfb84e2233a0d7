"""Fixtures: a real redis-server per test session (unix socket, nothing on disk), wiped per test."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from azjobs.cluster import embedded


@pytest.fixture(scope="session")
def redis_server() -> Iterator[embedded.EmbeddedRedis]:
    server = embedded.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: embedded.EmbeddedRedis) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    try:
        yield redis_server.url
    finally:
        client.flushall()
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """Tiny test networks gain nothing from threads, and spinning threads crawl on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


PASSWORD = "s3cret-Pw"


@pytest.fixture(scope="session")
def password_server() -> Iterator[embedded.EmbeddedRedis]:
    """A second redis-server, on a TCP port, that wants PASSWORD."""
    server = embedded.start(password=PASSWORD, unix_socket=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """RQ's worker and `azjobs train` install SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
