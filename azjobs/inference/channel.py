"""The few Redis list commands of the inference path, on a dedicated connection and without redis-py's
per-command layers (connection pool, retry wrapper, response callbacks): about 8 us of CPU per
command instead of about 30 on loopback, which is most of what moving a request costs.

Only list commands whose raw replies are what the caller wants (integers, bulk strings, arrays of
them). A failed command drops the connection (the next one reconnects) and raises
`redis.ConnectionError`, as the regular client would. The connection has the pool's socket timeout
and keepalive (`azjobs.cluster.connection`); a BLPOP never blocks longer than `MAX_BLOCK_S`, so a silent
Redis is a `redis.TimeoutError`, not a hang. The server's two bulk commands, LPOP of several requests and
the pipelined pushes of a batch's replies, go further: written with one `sendmsg` straight from the callers'
buffers (a reply's parts are never joined) and read by a hiredis reader of the channel's own, which
halves their CPU cost again.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any, Union

import hiredis
import redis

from azjobs.cluster.connection import MAX_BLOCK_S

# One value, or its consecutive parts; memoryviews one-dimensional, of bytes (len() is their size).
Value = Union[bytes, memoryview, Sequence[Union[bytes, memoryview]]]
READ_SIZE = 1 << 18  # bytes per recv: a few requests' worth
IOV_MAX = 512  # buffers per sendmsg, below the system's limit (1024 on Linux)


class ListChannel:
    """RPUSH / LPOP / BLPOP on one connection of `client`'s pool settings (URL, password, db)."""

    def __init__(self, client: redis.Redis) -> None:
        self._connection = client.connection_pool.make_connection()
        self._reader = hiredis.Reader()
        self._read_buffer = bytearray(READ_SIZE)

    def _call(self, *args: Any) -> Any:
        try:
            self._connection.send_command(*args)
            return self._connection.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            raise self._lost(e) from e

    def _lost(self, e: Exception) -> redis.RedisError:
        self._connection.disconnect()
        return e if isinstance(e, redis.RedisError) else redis.ConnectionError(str(e))

    def rpush(self, key: str, value: bytes | memoryview) -> int:
        return self._call("RPUSH", key, value)

    def lpop(self, key: str, count: int) -> list[bytes] | None:
        (reply,) = self._raw([("LPOP", key, str(count))])
        if isinstance(reply, redis.RedisError):
            raise reply
        return reply

    def blpop(self, key: str, timeout_s: float) -> bytes | None:
        """The head of `key`, waiting up to `timeout_s` but at most MAX_BLOCK_S (Redis 6 takes fractions of a
        second); None if none came."""
        found = self._call("BLPOP", key, f"{min(max(timeout_s, 0.001), MAX_BLOCK_S):.3f}")
        return None if found is None else found[1]

    def push_many(self, items: Sequence[tuple[str, Value]], expire: dict[str, int]) -> None:
        """RPUSH each (key, value), then EXPIRE each key of `expire` (seconds), in one round trip."""
        commands: list[tuple[Value, ...]] = [("RPUSH", key, value) for key, value in items]
        commands += [("EXPIRE", key, str(seconds)) for key, seconds in expire.items()]
        # Every reply is read even when one is an error (OOM, WRONGTYPE), so none is ever taken for the
        # answer to a later command.
        first = next((reply for reply in self._raw(commands) if isinstance(reply, redis.RedisError)), None)
        if first is not None:
            raise first

    def _raw(self, commands: Sequence[tuple[Value, ...]]) -> list[Any]:
        """Send the commands in one write and read one reply each; an error reply is returned as redis-py's
        exception for it (OutOfMemoryError, ReadOnlyError, ResponseError), not raised."""
        connection = self._connection
        try:
            if connection._sock is None:  # noqa: SLF001 (redis-py connects, authenticates, selects the db)
                connection.connect()
            sock = connection._sock  # noqa: SLF001
            _send(sock, [part for command in commands for part in _resp(command)])
            replies = []
            while len(replies) < len(commands):
                reply = self._reader.gets()
                if reply is False:  # more bytes needed
                    n = sock.recv_into(self._read_buffer)
                    if n == 0:
                        raise redis.ConnectionError("Redis closed the connection")
                    self._reader.feed(self._read_buffer, 0, n)
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    reply = connection._parser.parse_error(str(reply))  # noqa: SLF001
                replies.append(reply)
            return replies
        except (redis.ConnectionError, redis.TimeoutError, OSError, hiredis.ProtocolError) as e:
            self._reader = hiredis.Reader()  # what it holds belongs to the lost connection
            raise self._lost(e) from e

    def close(self) -> None:
        self._connection.disconnect()


def _resp(command: tuple[Value, ...]) -> list[bytes | memoryview]:
    """A command in the Redis protocol, as buffers to write one after the other (values not copied)."""
    parts: list[bytes | memoryview] = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, str):
            raw = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
            continue
        pieces = [arg] if isinstance(arg, (bytes, memoryview)) else list(arg)
        parts.append(b"$%d\r\n" % sum(map(len, pieces)))
        parts += pieces
        parts.append(b"\r\n")
    return parts


def _send(sock: Any, parts: list[bytes | memoryview]) -> None:
    """The parts in gather writes (sendmsg) of at most IOV_MAX buffers; whatever a full socket buffer
    leaves of one, with sendall. Through TLS, which has no gather write, joined."""
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(b"".join(parts))
        return
    for start in range(0, len(parts), IOV_MAX):
        chunk = parts[start : start + IOV_MAX]
        sent = sock.sendmsg(chunk)
        if sent < sum(map(len, chunk)):
            sock.sendall(memoryview(b"".join(chunk))[sent:])
