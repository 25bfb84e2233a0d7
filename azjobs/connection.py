"""Connecting to the run's Redis, with one-line errors a user can act on.

The password comes from the URL (`redis://:PASSWORD@host:6379/0`) or from the
AZJOBS_REDIS_PASSWORD environment variable, and is never printed: use `redact`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

import redis

from azjobs.errors import AzjobsError

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "AZJOBS_REDIS_URL"
PASSWORD_ENV = "AZJOBS_REDIS_PASSWORD"


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
    extra: dict[str, object] = {"health_check_interval": 30}
    if not url.startswith("unix://"):
        extra["socket_keepalive"] = True
    try:
        client = redis.Redis.from_url(url, **extra)
    except ValueError as e:
        raise AzjobsError(f"bad Redis URL {redact(url)}: {e}; write it as redis://[:PASSWORD@]HOST:PORT/DB") from None
    if check:
        ping(client, url)
    return client


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
