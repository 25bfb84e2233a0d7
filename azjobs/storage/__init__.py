"""What the run keeps on the storage root: replay shards, weights versions and trainer checkpoints."""

from __future__ import annotations

from typing import Any

from azjobs.storage.atomic import write_atomic
from azjobs.storage.replay import ReplayBuffer, list_shards, rebuild_index, register_shard
from azjobs.storage.shards import ShardError, ShardInfo, read_shard, read_shard_info, write_shard
from azjobs.storage.weights import WeightStore

# Checkpoints need torch; imported on first use so that shard writers stay light.
_CHECKPOINT_NAMES = {"CheckpointError", "CheckpointInfo", "load_latest_checkpoint", "save_checkpoint"}


def __getattr__(name: str) -> Any:
    if name in _CHECKPOINT_NAMES:
        from azjobs.storage import checkpoints

        return getattr(checkpoints, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "ReplayBuffer",
    "ShardError",
    "ShardInfo",
    "WeightStore",
    "list_shards",
    "load_latest_checkpoint",
    "read_shard",
    "read_shard_info",
    "rebuild_index",
    "register_shard",
    "save_checkpoint",
    "write_atomic",
    "write_shard",
]
