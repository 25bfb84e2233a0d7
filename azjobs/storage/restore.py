"""Putting a run back into a Redis that lost it (restarted empty): everything lasting is on the storage root."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from azjobs import keys
from azjobs import settings as run_settings
from azjobs.settings import Settings
from azjobs.storage import marker
from azjobs.storage.replay import rebuild_index
from azjobs.storage.weights import WeightStore

if TYPE_CHECKING:
    from redis import Redis


def restore_if_lost(
    client: Redis, run: str, run_dir: Path, settings: Settings, store: WeightStore, log: Callable[[str], None] = print
) -> bool:
    """If Redis no longer knows the run, put back its settings, newest weights and shard index; whether it did."""
    if client.exists(keys.settings(run)):
        return False
    run_settings.publish(client, run, Path(run_dir), settings)
    marker.ensure(client, run, Path(run_dir))
    version = store.latest_version()  # the newest file goes back into Redis
    shards = rebuild_index(client, run, Path(run_dir))  # and with the index, the games and positions counters
    log(
        f"Redis had lost run {run!r} (restarted empty?): restored its settings, weights version {version} "
        f"and {shards} replay shards from the storage root"
    )
    return True
