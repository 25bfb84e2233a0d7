"""Connecting to the run's Redis, with one-line errors a user can act on.

The password comes from the URL (`redis://:PASSWORD@host:6379/0`) or from the
AZJOBS_REDIS_PASSWORD environment variable, and is never printed: use `redact`.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from azjobs.errors import AzjobsError

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "AZJOBS_REDIS_URL"
PASSWORD_ENV = "AZJOBS_REDIS_PASSWORD"

# A head that lost power or a partitioned LAN leaves TCP connections half-open: without these a
# blocking read waits about two hours. Every blocking read of azjobs (BLPOP of the inference lists,
# RQ's dequeue) blocks for at most MAX_BLOCK_S, so a read silent for SOCKET_TIMEOUT_S means a dead peer.
SOCKET_CONNECT_TIMEOUT_S = 10.0
SOCKET_TIMEOUT_S = 20.0
MAX_BLOCK_S = 10.0  # longest server-side block (BLPOP timeout) any azjobs command asks for
HEALTH_CHECK_INTERVAL_S = 30  # a pooled connection idle for longer is PINGed before use
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3  # an idle dead peer is found in ~25 s
RETRIES = 3  # redis-py's own retries of a failed command; the roles wait out longer outages themselves

# What an outage looks like to a role: Redis gone, silent, out of memory (maxmemory, noeviction)
# or read-only (a replica, or a primary demoted by failover). Roles wait these out, saying so once.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
)
# Outages in replies that redis-py gives no class of their own: a blocked client is unblocked when its
# primary becomes a replica; a replica without its primary refuses to answer; and OOM or READONLY
# inside a script's error ("Error running script ...: -OOM command not allowed ...").
OUTAGE_CODES = ("UNBLOCKED", "MASTERDOWN", "OOM command not allowed", "READONLY")


def read_password(
    password_file: Path | None, *, env: str = PASSWORD_ENV, what: str = "the password file"
) -> str | None:
    """A password: the file's content (whitespace stripped), else $`env`, else none."""
    if password_file is None:
        return os.environ.get(env) or None
    try:
        found = Path(password_file).read_text().strip()
    except OSError as e:
        raise AzjobsError(f"cannot read {what} {password_file}: {e.strerror}") from None
    if not found:
        raise AzjobsError(f"{what} {password_file} is empty: put the password in it")
    return found


def redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    # Up to the last @ of the host part: a raw @ inside the password must not leak its tail.
    url = re.sub(r"(://[^:@/]*:)[^/?#]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def effective_url(url: str | None = None) -> str:
    """`url` (default: $AZJOBS_REDIS_URL, else localhost) with $AZJOBS_REDIS_PASSWORD put in if it has none."""
    url = url or os.environ.get(URL_ENV) or DEFAULT_URL
    password = os.environ.get(PASSWORD_ENV)
    if not password or "password=" in url or re.search(r"://[^/]*@", url):
        return url
    if url.startswith("unix://"):
        return f"{url}{'&' if '?' in url else '?'}password={quote(password, safe='')}"
    return url.replace("://", f"://:{quote(password, safe='')}@", 1)


def connect(url: str | None = None, *, check: bool = True) -> redis.Redis:
    """A client for `effective_url(url)`, checked with a PING."""
    url = effective_url(url)
    try:
        client = redis.Redis.from_url(url, **connection_options(url))
    except ValueError as e:
        raise AzjobsError(f"bad Redis URL {redact(url)}: {e}; write it as redis://[:PASSWORD@]HOST:PORT/DB") from None
    if check:
        ping(client, url)
    return client


# redis-py types its replies as `bytes | str` or wider (it cannot know decode_responses); azjobs' clients
# are made without decode_responses, so every reply is bytes. These say so once, for the type checker too.


def as_bytes(reply: object) -> bytes:
    """A reply of an azjobs client: bytes."""
    assert isinstance(reply, bytes), "azjobs' Redis clients return bytes (made without decode_responses)"
    return reply


def as_text(reply: object) -> str:
    """A reply of an azjobs client, decoded as UTF-8."""
    return as_bytes(reply).decode()


def as_text_hash(reply: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """An HGETALL reply of an azjobs client, its fields and values decoded as UTF-8."""
    return {as_text(k): as_text(v) for k, v in reply.items()}


def connection_options(url: str) -> dict[str, object]:
    """The timeouts, keepalive and retries every azjobs connection to `url` is made with."""
    options: dict[str, object] = {
        "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), RETRIES),
    }
    if not url.startswith("unix://"):
        options["socket_keepalive"] = True
        options["socket_keepalive_options"] = keepalive_options()
    return options


def keepalive_options() -> dict[int, int]:
    """TCP keepalive probing of idle connections (those the platform knows of)."""
    wanted = {"TCP_KEEPIDLE": KEEPALIVE_IDLE_S, "TCP_KEEPINTVL": KEEPALIVE_INTERVAL_S, "TCP_KEEPCNT": KEEPALIVE_COUNT}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def is_outage(e: BaseException) -> bool:
    """Whether a Redis error is an outage to wait out, not a fault of the command."""
    if isinstance(e, OUTAGE_ERRORS):
        return True
    return isinstance(e, redis.ResponseError) and any(code in str(e) for code in OUTAGE_CODES)


def describe_outage(e: Exception) -> str:
    """A few words for a role's log line: what kind of outage `e` (`is_outage`) is."""
    if isinstance(e, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(e):
        return "Redis is out of memory and refuses writes (maxmemory)"
    if isinstance(e, redis.exceptions.ReadOnlyError) or isinstance(e, redis.ResponseError):
        return "Redis is read-only (a replica) and refuses writes"
    return f"lost the connection to Redis ({e.__class__.__name__})"


class Outage:
    """An outage of Redis as a role's log tells it: said once when the first of its parties (threads, or
    the one loop) meets one, and once when the last of them gets through again (a party that still
    succeeds, say popping from a Redis that refuses writes, neither starts nor ends it).

    `lost` is the line for an outage, `{cause}` in it the `describe_outage` of the error; `back` the
    line for its end.
    """

    def __init__(self, log: Callable[[str], None], back: str, *, lost: str = "{cause}; retrying every second") -> None:
        self.log, self.back_line, self.lost_line = log, back, lost
        self.lock = threading.Lock()
        self.parties: set[str] = set()

    @property
    def on(self) -> bool:
        """Whether some party is still waiting for Redis."""
        return bool(self.parties)

    def lost(self, party: str, e: Exception | None = None) -> None:
        """`party` met an outage (`e`, an error that `is_outage`; None where it was not kept)."""
        with self.lock:
            if not self.parties:
                cause = describe_outage(e) if e is not None else "lost Redis"
                self.log(self.lost_line.format(cause=cause))
            self.parties.add(party)

    def passed(self, party: str) -> None:
        """`party` got through to Redis."""
        if party not in self.parties:  # the common case, without the lock
            return
        with self.lock:
            self.parties.discard(party)
            if not self.parties:
                self.log(self.back_line)


T = TypeVar("T")


def wait_for(
    found: Callable[[], T | None],
    say: Callable[[str], None],
    waiting: str,
    *,
    poll_s: float = 1.0,
    stop: threading.Event | None = None,
    between: Callable[[], object] | None = None,
) -> T | None:
    """The first true value of `found()`, asked every `poll_s` seconds, saying `waiting` once before the
    first wait (and calling `between`, say a heartbeat, before each); None if `stop` is set first."""
    stop = stop or threading.Event()
    said = False
    while not stop.is_set():
        value = found()
        if value:
            return value
        if not said:
            say(waiting)
            said = True
        if between is not None:
            between()
        stop.wait(poll_s)
    return None


def ping(client: redis.Redis, url: str) -> None:
    shown = redact(url)
    try:
        client.ping()
    except redis.AuthenticationError:
        # redis-py raises AuthenticationError for NOAUTH too: tell "none given" from "wrong one".
        if not client.connection_pool.connection_kwargs.get("password"):
            raise AzjobsError(_needs_password(shown)) from None
        raise AzjobsError(
            f"Redis at {shown} refused the password: put the right one in the URL or in ${PASSWORD_ENV}"
        ) from None
    except redis.ResponseError as e:
        if "NOAUTH" in str(e) or "AUTH" in str(e).upper():
            raise AzjobsError(_needs_password(shown)) from None
        raise AzjobsError(f"Redis at {shown} answered with an error: {e}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
        raise AzjobsError(
            f"cannot reach Redis at {shown} ({e.__class__.__name__}): start it, or pass --redis-url / set ${URL_ENV}"
        ) from None


def _needs_password(shown: str) -> str:
    return (
        f"Redis at {shown} needs a password: give it in the URL (redis://:PASSWORD@host:port/0) or in ${PASSWORD_ENV}"
    )
