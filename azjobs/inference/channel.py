"""The few Redis list commands of the inference path, on a dedicated connection and without redis-py's
per-command layers (connection pool, retry wrapper, response callbacks): about 8 us of CPU per
command instead of about 30 on loopback, which is most of what moving a request costs.

Only list commands whose raw replies are what the caller wants (integers, bulk strings, arrays of
them). A failed command drops the connection (the next one reconnects) and raises
`redis.ConnectionError`, as the regular client would. The connection has the pool's socket timeout
and keepalive (`azjobs.connection`); a BLPOP never blocks longer than `MAX_BLOCK_S`, so a silent
Redis is a `redis.TimeoutError`, not a hang.
"""

from __future__ import annotations

from typing import Any

import redis

from azjobs.connection import MAX_BLOCK_S


class ListChannel:
    """RPUSH / LPOP / BLPOP on one connection of `client`'s pool settings (URL, password, db)."""

    def __init__(self, client: redis.Redis) -> None:
        self._connection = client.connection_pool.make_connection()

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
        return self._call("LPOP", key, count)

    def blpop(self, key: str, timeout_s: float) -> bytes | None:
        """The head of `key`, waiting up to `timeout_s` but at most MAX_BLOCK_S (Redis 6 takes fractions of a
        second); None if none came."""
        found = self._call("BLPOP", key, f"{min(max(timeout_s, 0.001), MAX_BLOCK_S):.3f}")
        return None if found is None else found[1]

    def push_many(self, items: list[tuple[str, bytes | memoryview]], expire: dict[str, int]) -> None:
        """RPUSH each (key, value), then EXPIRE each key of `expire` (seconds), in one round trip."""
        commands: list[tuple[Any, ...]] = [("RPUSH", key, value) for key, value in items]
        commands += [("EXPIRE", key, seconds) for key, seconds in expire.items()]
        try:
            self._connection.send_packed_command(self._connection.pack_commands(commands))
            errors = [self._read_error() for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            raise self._lost(e) from e
        first = next((error for error in errors if error is not None), None)
        if first is not None:
            raise first

    def _read_error(self) -> redis.ResponseError | None:
        """Read one reply of a pipeline; the error it is, if one. Every reply is read, so that an error
        (OOM, WRONGTYPE) never leaves the rest of them to be taken for the answers to later commands."""
        try:
            self._connection.read_response()
        except redis.ResponseError as e:
            return e
        return None

    def close(self) -> None:
        self._connection.disconnect()
