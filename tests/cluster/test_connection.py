"""Connecting to a run's Redis: passwords never shown, and one-line errors a user can act on."""

from __future__ import annotations

import socket
import threading

import pytest
import redis

from azjobs.cluster import embedded
from azjobs.cluster.connection import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE_S,
    KEEPALIVE_INTERVAL_S,
    MAX_BLOCK_S,
    PASSWORD_ENV,
    SOCKET_CONNECT_TIMEOUT_S,
    SOCKET_TIMEOUT_S,
    URL_ENV,
    Outage,
    connect,
    describe_outage,
    is_outage,
    redact,
    wait_for,
)
from azjobs.errors import AzjobsError

PASSWORD = "s3cret-Pw"  # the password of the `password_server` fixture


@pytest.fixture(autouse=True)
def no_azjobs_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


def host_port(server: embedded.EmbeddedRedis) -> str:
    return server.url.rsplit("@", 1)[1].split("/")[0]  # "127.0.0.1:PORT"


def error_of(url: str | None) -> str:
    with pytest.raises(AzjobsError) as caught:
        connect(url)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("rediss://:pw@h:6380/2", "rediss://:***@h:6380/2"),
        ("unix:///tmp/r.sock?password=pw", "unix:///tmp/r.sock?password=***"),
        ("unix:///tmp/r.sock?db=1&password=pw&x=2", "unix:///tmp/r.sock?db=1&password=***&x=2"),
        ("redis://:p@ss@h:1/0", "redis://:***@h:1/0"),  # a raw @ in the password hides all of it
        ("redis://h:1/0", "redis://h:1/0"),
        ("redis://h:1/0?x=a@b", "redis://h:1/0?x=a@b"),
    ],
)
def test_redact_hides_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_connect_reaches_a_running_server(redis_url: str) -> None:
    client = connect(redis_url)
    assert client.ping() is True


def test_url_from_environment(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, redis_url)
    assert connect().ping() is True


def test_closed_port_says_how_to_fix_it() -> None:
    port = embedded.free_port()  # bound and released: nothing listens there
    message = error_of(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
    assert message.startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0")
    assert "--redis-url" in message and URL_ENV in message
    assert PASSWORD not in message


def test_malformed_url_is_named_without_its_password() -> None:
    message = error_of(f"http://:{PASSWORD}@127.0.0.1:1/0")
    assert message.startswith("bad Redis URL http://:***@127.0.0.1:1/0")
    assert "redis://[:PASSWORD@]HOST:PORT/DB" in message
    assert PASSWORD not in message


def test_check_false_does_not_ping() -> None:
    port = embedded.free_port()
    client = connect(f"redis://127.0.0.1:{port}/0", check=False)
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_right_password_in_url(password_server: embedded.EmbeddedRedis) -> None:
    assert connect(password_server.url).ping() is True


def test_wrong_password_is_refused(password_server: embedded.EmbeddedRedis) -> None:
    message = error_of(f"redis://:wrong-{PASSWORD}@{host_port(password_server)}/0")
    assert "refused the password" in message and PASSWORD_ENV in message
    assert "redis://:***@" in message and PASSWORD not in message


def test_wrong_user_password_pair_is_refused(password_server: embedded.EmbeddedRedis) -> None:
    message = error_of(f"redis://default:nope@{host_port(password_server)}/0")
    assert "refused the password" in message and "nope" not in message


def test_missing_password_says_one_is_needed(password_server: embedded.EmbeddedRedis) -> None:
    message = error_of(f"redis://{host_port(password_server)}/0")
    assert "needs a password" in message
    assert "redis://:PASSWORD@host:port/0" in message and PASSWORD_ENV in message


def test_password_from_environment(password_server: embedded.EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://{host_port(password_server)}/0"
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert connect(url).ping() is True
    monkeypatch.setenv(PASSWORD_ENV, "not-it")
    message = error_of(url)
    assert "refused the password" in message and "not-it" not in message


def test_password_in_url_wins_over_environment(
    password_server: embedded.EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-it")
    assert connect(password_server.url).ping() is True


def test_every_connection_has_timeouts_and_keepalive(password_server: embedded.EmbeddedRedis, redis_url: str) -> None:
    for url in (password_server.url, redis_url):  # TCP and unix socket
        kwargs = connect(url).connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == SOCKET_TIMEOUT_S > MAX_BLOCK_S  # a blocking read ends first
        assert kwargs["socket_connect_timeout"] == SOCKET_CONNECT_TIMEOUT_S
        assert kwargs["health_check_interval"] > 0
    client = connect(password_server.url)
    assert client.connection_pool.connection_kwargs["socket_keepalive"] is True
    connection = client.connection_pool.get_connection()
    try:
        connection.connect()
        sock = connection._sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_COUNT
        assert sock.gettimeout() == SOCKET_TIMEOUT_S
    finally:
        client.connection_pool.release(connection)


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (redis.ConnectionError("Connection refused"), True),
        (redis.TimeoutError("Timeout reading"), True),
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed"), True),
        (
            redis.ResponseError(
                "Error running script (call to f_1): @user_script:7: -OOM command not allowed when "
                "used memory > 'maxmemory'."
            ),
            True,
        ),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        (redis.ResponseError("ERR unknown command"), False),
    ],
)
def test_outages_are_told_from_faults_of_the_command(error: redis.RedisError, outage: bool) -> None:
    assert is_outage(error) is outage
    if outage:
        assert "\n" not in describe_outage(error) and "Redis" in describe_outage(error)


def test_outages_are_said_once_across_threads() -> None:
    lines: list[str] = []
    outage = Outage(lines.append, "Redis is back; serving again")
    refused = redis.exceptions.OutOfMemoryError("OOM command not allowed")
    outage.passed("collector")  # nothing was lost: nothing to say
    outage.lost("sender", refused)
    outage.lost("forward", refused)
    outage.passed("collector")  # a thread that still gets through (pops) ends nothing
    outage.passed("sender")
    assert len(lines) == 1 and "out of memory" in lines[0]
    outage.passed("forward")
    assert lines[1:] == ["Redis is back; serving again"]


def test_wait_for_says_once_and_returns_the_first_true_value() -> None:
    lines: list[str] = []
    answers = iter([None, 0, None, "found"])
    assert wait_for(lambda: next(answers), lines.append, "waiting", poll_s=0.0) == "found"
    assert lines == ["waiting"]
    stop = threading.Event()
    stop.set()
    assert wait_for(lambda: "never asked", lines.append, "waiting", stop=stop) is None
