"""The run's one clock: Redis' TIME, read on any host through this host's monotonic clock.

Times that processes on different hosts compare (a request's send time, read by a server) are taken on
this clock, so host clocks that differ by seconds or minutes never make a live request look stale.
"""

from __future__ import annotations

import time

import redis

RESYNC_S = 60.0  # how often the offset to Redis' clock is measured again


class RedisClock:
    """`now_us()`: microseconds since the epoch by Redis' clock, off by at most half a round trip."""

    def __init__(self, client: redis.Redis, resync_s: float = RESYNC_S) -> None:
        self.client = client
        self.resync_s = resync_s
        self._offset_us: int | None = None  # Redis time minus this host's monotonic time
        self._synced_at = 0.0

    def sync(self) -> None:
        """Measure the offset now (raises the Redis error if Redis does not answer)."""
        before = time.monotonic_ns()
        seconds, micros = self.client.time()
        after = time.monotonic_ns()
        self._offset_us = seconds * 1_000_000 + micros - (before + after) // 2000
        self._synced_at = after / 1e9

    def forget(self) -> None:
        """Measure again before the next reading (after an outage: Redis may run elsewhere now)."""
        self._offset_us = None

    def now_us(self) -> int:
        if self._offset_us is None or time.monotonic() - self._synced_at >= self.resync_s:
            self.sync()
        assert self._offset_us is not None
        return time.monotonic_ns() // 1000 + self._offset_us
