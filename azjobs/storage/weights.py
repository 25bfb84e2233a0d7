"""Versioned weights: every version on the storage root, the newest few in Redis, announced on publish.

The bytes are opaque here (safetensors made by `azjobs.net`). The file is written first, so a
Redis that loses its data loses no weights, and the latest version only ever goes up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from azjobs import keys
from azjobs.cluster.connection import as_bytes
from azjobs.errors import AzjobsError
from azjobs.storage.atomic import write_atomic

if TYPE_CHECKING:
    from redis import Redis

WEIGHTS_DIR = "weights"
CANDIDATES_DIR = "candidates"  # weights/candidates/: versions staged for the gate, not (yet) served
FILE_PATTERN = re.compile(r"^v(\d+)\.safetensors$")

# Set the latest version to ARGV[1] unless it is already as high; 1 if it moved.
_ADVANCE_LATEST = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local version = tonumber(ARGV[1])
if version > current then
    redis.call('SET', KEYS[1], ARGV[1])
    return 1
end
return 0
"""


def file_name(version: int) -> str:
    return f"v{version:06d}.safetensors"


def versions_in(directory: Path) -> list[int]:
    """The versions whose files are in `directory`, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(FILE_PATTERN.match, names) if m)


def latest_file(run_dir: Path) -> tuple[int, Path] | None:
    """The newest version on the storage root and its file, without Redis (for `azjobs bestmove`)."""
    versions = versions_in(Path(run_dir) / WEIGHTS_DIR)
    if not versions:
        return None
    return versions[-1], Path(run_dir) / WEIGHTS_DIR / file_name(versions[-1])


class WeightStore:
    """A run's published weights versions."""

    def __init__(self, redis: Redis, run: str, run_dir: Path, *, keep_in_redis: int = 5) -> None:
        self.redis = redis
        self.run = run
        self.dir = Path(run_dir) / WEIGHTS_DIR
        self.keep_in_redis = max(1, keep_in_redis)
        self._advance_latest = redis.register_script(_ADVANCE_LATEST)

    def path(self, version: int) -> Path:
        return self.dir / file_name(version)

    def candidate_path(self, version: int) -> Path:
        return self.dir / CANDIDATES_DIR / file_name(version)

    def publish(self, version: int, data: bytes) -> None:
        """Store a version (disk first, then Redis) and announce it if it is the newest."""
        if version < 0:
            raise ValueError(f"weights versions are non-negative, got {version}")
        write_atomic(self.path(version), data)
        if self._hold(version, data):
            self.redis.publish(keys.weights_channel(self.run), str(version))

    def stage(self, version: int, data: bytes) -> None:
        """Store a version for the gate (weights/candidates/ and Redis) without serving it."""
        if version < 0:
            raise ValueError(f"weights versions are non-negative, got {version}")
        write_atomic(self.candidate_path(version), data)
        self._hold(version, data, advance=False)

    def promote(self, version: int) -> None:
        """Serve a staged version: published as any other (a no-op for the latest if a newer one is served)."""
        self.publish(version, self.load(version))

    def staged_versions(self) -> list[int]:
        """Versions staged for the gate, oldest first (promoted ones stay listed)."""
        return versions_in(self.dir / CANDIDATES_DIR)

    def _hold(self, version: int, data: bytes, advance: bool = True) -> bool:
        """Put a version's bytes in Redis, drop all but the newest kept; whether it became the latest."""
        run = self.run
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.weights(run, version), data)
        pipe.zadd(keys.weights_versions(run), {str(version): version})
        pipe.execute()
        advanced = advance and bool(self._advance_latest(keys=[keys.weights_latest(run)], args=[version]))
        old = self.redis.zrange(keys.weights_versions(run), 0, -self.keep_in_redis - 1)
        if old:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(*(keys.weights(run, int(as_bytes(v))) for v in old))
            pipe.zrem(keys.weights_versions(run), *old)
            pipe.execute()
        return advanced

    def latest_version(self) -> int | None:
        """The newest version: from Redis, else the newest file (put back into Redis); None if none."""
        raw = self.redis.get(keys.weights_latest(self.run))
        if raw is not None:
            return int(raw)
        on_disk = self.versions_on_disk()
        if not on_disk:
            return None
        version = on_disk[-1]
        self._hold(version, self._read_file(version))
        return version

    def reconcile(self) -> int | None:
        """Bring Redis' latest version up to the newest file on the storage root (a Redis restored from
        an older snapshot lags behind it); the newest served version, None if there is none."""
        raw = self.redis.get(keys.weights_latest(self.run))
        in_redis = None if raw is None else int(raw)
        on_disk = self.versions_on_disk()
        if on_disk and (in_redis is None or on_disk[-1] > in_redis):
            if self._hold(on_disk[-1], self._read_file(on_disk[-1])):
                self.redis.publish(keys.weights_channel(self.run), str(on_disk[-1]))
            return on_disk[-1]
        return in_redis

    def versions_on_disk(self) -> list[int]:
        """Every version stored on the storage root, oldest first."""
        return versions_in(self.dir)

    def load(self, version: int) -> bytes:
        """The bytes of one version: from Redis if held there, else from its file."""
        data = self.redis.get(keys.weights(self.run, version))
        return as_bytes(data) if data is not None else self._read_file(version)

    def _read_file(self, version: int) -> bytes:
        try:
            return self.path(version).read_bytes()
        except FileNotFoundError:
            pass
        try:
            return self.candidate_path(version).read_bytes()
        except FileNotFoundError:
            raise AzjobsError(
                f"weights version {version} of run {self.run!r} is neither in Redis nor at {self.path(version)}; "
                "check that --run-dir points at the run's folder on the storage root"
            ) from None

    def latest(self) -> tuple[int, bytes] | None:
        """The newest version and its bytes, or None before the first publish."""
        version = self.latest_version()
        return None if version is None else (version, self.load(version))
