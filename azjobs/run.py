"""The run: its name, its folder on the storage root and its Redis, as every role and command joins it.

A run is named by its folder's last component (`settings.run_name`); its settings live in Redis under
`keys.settings(name)` and in `<folder>/settings.toml` (see docs/design.md, Run settings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from azjobs import settings as run_settings
from azjobs.cluster.connection import wait_for
from azjobs.settings import Settings


@dataclass(frozen=True)
class Run:
    name: str
    folder: Path | None  # None where a command works from Redis alone
    redis: Redis

    def settings(self) -> Settings | None:
        """The run's settings (from Redis, else the storage root, restoring Redis); None before it exists."""
        return run_settings.fetch(self.redis, self.name, self.folder)

    def wait(self, say: Callable[[str], None], poll_s: float = 1.0) -> Settings:
        """Block until the run exists, saying so once; then its settings."""
        waiting = f"waiting for run {self.name!r} to be created (start `azjobs train` or `azjobs run` for it)"
        found = wait_for(self.settings, say, waiting, poll_s=poll_s)
        assert found is not None  # no stop event: it waits until the run exists
        return found
