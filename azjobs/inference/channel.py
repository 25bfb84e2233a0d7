"""The few Redis list commands of the inference path, on a dedicated connection and without redis-py's
per-command layers (connection pool, retry wrapper, response callbacks): about 8 us of CPU per
command instead of about 30 on loopback, which is most of what moving a request costs.

Only list commands whose raw replies are what the caller wants (integers, bulk strings, arrays of
them). A failed command drops the connection (the next one reconnects) and raises
`redis.ConnectionError`, as the regular client would.
"""

from __future__ import annotations

from typing import Any

import redis


class ListChannel:
    """RPUSH / LPOP / BLPOP on one connection of `client`'s pool settings (URL, password, db)."""

    def __init__(self, client: redis.Redis) -> None:
        self._connection = client.connection_pool.make_connection()

    def _call(self, *args: Any) -> Any:
        try:
            self._connection.send_command(*args)
            return self._connection.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            self._connection.disconnect()
            if isinstance(e, redis.RedisError):
                raise
            raise redis.ConnectionError(str(e)) from e

    def rpush(self, key: str, value: bytes | memoryview) -> int:
        return self._call("RPUSH", key, value)

    def lpop(self, key: str, count: int) -> list[bytes] | None:
        return self._call("LPOP", key, count)

    def blpop(self, key: str, timeout_s: float) -> bytes | None:
        """The head of `key`, waiting up to `timeout_s` (Redis 6 takes fractions of a second); None if none came."""
        found = self._call("BLPOP", key, f"{max(timeout_s, 0.001):.3f}")
        return None if found is None else found[1]

    def push_many(self, items: list[tuple[str, bytes | memoryview]], expire: dict[str, int]) -> None:
        """RPUSH each (key, value), then EXPIRE each key of `expire` (seconds), in one round trip."""
        commands: list[tuple[Any, ...]] = [("RPUSH", key, value) for key, value in items]
        commands += [("EXPIRE", key, seconds) for key, seconds in expire.items()]
        try:
            self._connection.send_packed_command(self._connection.pack_commands(commands))
            replies = [self._connection.read_response() for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            self._connection.disconnect()
            if isinstance(e, redis.RedisError):
                raise
            raise redis.ConnectionError(str(e)) from e
        errors = [reply for reply in replies if isinstance(reply, redis.ResponseError)]
        if errors:
            raise errors[0]

    def close(self) -> None:
        self._connection.disconnect()
