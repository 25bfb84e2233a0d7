"""Replay shards: one HDF5 file of finished games per self-play job, validated on read.

Dataset names spell their axes (N positions, G games, C/H/W planes, A actions); the
file is written under a temporary name that readers ignore, then renamed into place.
"""

from __future__ import annotations

import errno
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from azjobs.errors import AzjobsError
from azjobs.game_records import GameRecords
from azjobs.storage.atomic import write_with

FORMAT_VERSION = 3  # 2 added policy_weight_N (playout cap randomization), 3 root_value_N and policy_surprise_N
READABLE_VERSIONS = (1, 2, 3)  # a version 1 shard has policy targets at every position, one before 3 no Q
SUFFIX = ".h5"
GZIP_LEVEL = 4  # planes are 0/1 bytes: cheap gzip already shrinks them several times
CHUNK_ROWS = 1024  # positions per HDF5 chunk
POLICY_SUM_TOLERANCE = 1e-3

# Dataset name -> (GameRecords field, dtype). The last letters name the axes.
DATASETS: dict[str, tuple[str, np.dtype]] = {
    "planes_NCHW": ("planes", np.dtype(np.uint8)),
    "policy_NA": ("policy", np.dtype(np.float32)),
    "value_N": ("value", np.dtype(np.float32)),
    "weights_version_N": ("weights_version", np.dtype(np.int32)),
    "results_G": ("results", np.dtype(np.int8)),
    "game_lengths_G": ("game_lengths", np.dtype(np.int32)),
    "policy_weight_N": ("policy_weight", np.dtype(np.float32)),
    "root_value_N": ("root_value", np.dtype(np.float32)),
    "policy_surprise_N": ("policy_surprise", np.dtype(np.float32)),
}
# Datasets a shard of an older format lacks: their field takes its default (root_value: the result z).
ADDED_IN = {"policy_weight_N": 2, "root_value_N": 3, "policy_surprise_N": 3}
COMPRESSED = {"planes_NCHW", "policy_NA"}


# Read errors that say nothing about the file (a stale NFS handle, a lock or a server that did not
# answer in time): the read is tried again before the shard counts as bad.
TRANSIENT_ERRNOS = frozenset(
    {errno.ESTALE, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EIO, errno.ETIMEDOUT, errno.ENOLCK}
)
_TRANSIENT_WORDS = (
    "stale file handle",
    "unable to lock file",
    "resource temporarily unavailable",
    "no locks available",
    "input/output error",
    "timed out",
)


class ShardError(AzjobsError):
    """A replay shard that cannot be used: unreadable, truncated, or inconsistent."""


class TransientShardError(ShardError):
    """A shard that could not be read for a reason that may pass (see TRANSIENT_ERRNOS): try it again."""


def _read_failed(path: Path, what: str, error: Exception) -> ShardError:
    """The ShardError for a failed read: transient when the OS error is one that may pass."""
    message = f"bad replay shard {path}: {what} ({error})"
    if isinstance(error, OSError) and (
        error.errno in TRANSIENT_ERRNOS or any(w in str(error).lower() for w in _TRANSIENT_WORDS)
    ):
        return TransientShardError(message)
    return ShardError(message)


def open_for_reading(path: Path) -> h5py.File:
    """Open a finished shard without HDF5's file locks: shards never change once landed, and mounts
    without lock support (some NFS setups) would otherwise refuse every read."""
    return h5py.File(path, "r", locking=False)


@dataclass(frozen=True)
class ShardInfo:
    """What the shard index in Redis records about one shard file."""

    name: str  # file name inside <run_dir>/replay/
    positions: int
    games: int
    created: float  # unix time

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardInfo:
        d = json.loads(text)
        return cls(str(d["name"]), int(d["positions"]), int(d["games"]), float(d["created"]))


def is_shard_name(name: str) -> bool:
    """A finished shard's file name (temporary and hidden files are not)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def shard_name(created: float, job_id: str) -> str:
    """`<UTC time to the microsecond>-<job id>.h5`: names sort by creation time."""
    stamp = datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    safe_job = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id) or "job"
    return f"{stamp}-{safe_job}{SUFFIX}"


def write_shard(
    replay_dir: Path,
    records: GameRecords,
    *,
    game: str,
    job_id: str,
    worker: str,
    planes_shape: tuple[int, int, int],
    num_actions: int,
    created: float | None = None,
) -> ShardInfo:
    """Write `records` as one new shard in `replay_dir` (atomically) and describe it.

    The name comes from `created` (default: now) and the job id, so a retried job that passes its
    job's creation time writes the same name: if a shard of that name landed already, it stays, and
    its description is returned instead (a job's games land once).
    """
    problem = check_records(records, tuple(planes_shape), num_actions)
    if problem:
        raise ShardError(f"refusing to write a replay shard for job {job_id}: {problem}")
    replay_dir = Path(replay_dir)
    replay_dir.mkdir(parents=True, exist_ok=True)
    created = time.time() if created is None else created
    name = shard_name(created, job_id)

    def fill(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for dataset, (field, dtype) in DATASETS.items():
                _write_dataset(f, dataset, np.asarray(getattr(records, field), dtype=dtype))
            attrs: dict[str, Any] = {
                "format_version": FORMAT_VERSION,
                "game": game,
                "job_id": job_id,
                "worker": worker,
                "created": created,
                "created_iso": datetime.fromtimestamp(created, tz=timezone.utc).isoformat(),
                "positions": records.positions,
                "games": records.games,
            }
            f.attrs.update(attrs)

    if not write_with(replay_dir / name, fill, replace=False):
        return read_shard_info(replay_dir / name)
    return ShardInfo(name=name, positions=records.positions, games=records.games, created=created)


def _write_dataset(f: h5py.File, name: str, data: np.ndarray) -> None:
    if name not in COMPRESSED:
        f.create_dataset(name, data=data)
        return
    chunks = (max(1, min(len(data), CHUNK_ROWS)), *data.shape[1:])
    f.create_dataset(name, data=data, chunks=chunks, compression="gzip", compression_opts=GZIP_LEVEL)


def read_shard_info(path: Path) -> ShardInfo:
    """The index record of a shard from its attributes alone (no arrays read)."""
    path = Path(path)
    try:
        with open_for_reading(path) as f:
            return ShardInfo(
                name=path.name,
                positions=int(f.attrs["positions"]),
                games=int(f.attrs["games"]),
                created=float(f.attrs["created"]),
            )
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise _read_failed(path, "cannot read its attributes", e) from None


def read_shard(path: Path, *, game: str, planes_shape: tuple[int, int, int], num_actions: int) -> GameRecords:
    """Read and validate one shard; ShardError naming the file and the problem otherwise."""
    path = Path(path)
    try:
        with open_for_reading(path) as f:
            problem = _check_attrs(f, game)
            if problem:
                raise ShardError(f"bad replay shard {path}: {problem}")
            records = _read_arrays(f, path, tuple(planes_shape), num_actions)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise _read_failed(path, "unreadable or truncated", e) from None
    problem = check_records(records, tuple(planes_shape), num_actions)
    if problem:
        raise ShardError(f"bad replay shard {path}: {problem}")
    return records


def _read_arrays(f: h5py.File, path: Path, planes_shape: tuple[int, ...], num_actions: int) -> GameRecords:
    """The datasets, each checked for presence, dtype and shape before it is read (no huge reads)."""
    n, g = int(f.attrs["positions"]), int(f.attrs["games"])
    version = int(f.attrs["format_version"])
    shapes = {"N": (n,), "NA": (n, num_actions), "NCHW": (n, *planes_shape), "G": (g,)}
    arrays: dict[str, np.ndarray] = {}
    for dataset, (field, dtype) in DATASETS.items():
        if version < ADDED_IN.get(dataset, 0):
            continue
        ds = f.get(dataset)
        if not isinstance(ds, h5py.Dataset):
            raise ShardError(f"bad replay shard {path}: dataset {dataset} is missing")
        if ds.dtype != dtype:
            raise ShardError(f"bad replay shard {path}: dataset {dataset} is {ds.dtype}, expected {dtype}")
        expected = shapes[dataset.rsplit("_", 1)[1]]
        if ds.shape != expected:
            raise ShardError(
                f"bad replay shard {path}: dataset {dataset} has shape {ds.shape}, expected {expected} "
                f"for {n} positions in {g} games"
            )
        arrays[field] = ds[()]
    return GameRecords(**arrays)


def _check_attrs(f: h5py.File, game: str) -> str | None:
    for attr in ("format_version", "game", "positions", "games", "created"):
        if attr not in f.attrs:
            return f"attribute {attr} is missing"
    if int(f.attrs["format_version"]) not in READABLE_VERSIONS:
        return (
            f"format version {f.attrs['format_version']} (this azjobs reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}): update azjobs"
        )
    stored_game = f.attrs["game"]
    stored_game = stored_game.decode() if isinstance(stored_game, bytes) else str(stored_game)
    if stored_game != game:
        return f"it holds {stored_game} games, this run plays {game}"
    return None


def check_records(records: GameRecords, planes_shape: tuple[int, ...], num_actions: int) -> str | None:
    """What is wrong with `records` for a game of these shapes, or None if nothing is."""
    # N from the planes, G from the results: every other array must agree with them.
    n = np.shape(records.planes)[0] if np.ndim(records.planes) else 0
    g = np.shape(records.results)[0] if np.ndim(records.results) else 0
    shapes = {
        "planes": (n, *planes_shape),
        "policy": (n, num_actions),
        "value": (n,),
        "weights_version": (n,),
        "results": (g,),
        "game_lengths": (g,),
        "policy_weight": (n,),
        "root_value": (n,),
        "policy_surprise": (n,),
    }
    for field, shape in shapes.items():
        got = np.shape(getattr(records, field))
        if got != shape:
            return f"{field} has shape {got}, expected {shape}"
    if np.any(records.game_lengths < 1) or int(np.sum(records.game_lengths, dtype=np.int64)) != n:
        return f"game lengths do not add up to the {n} positions"
    if not np.isin(records.results, (-1, 0, 1)).all():
        return "a game result is not -1, 0 or +1"
    if not (np.isfinite(records.policy).all() and np.isfinite(records.value).all()):
        return "policy or value holds NaN or infinity"
    if np.any(records.policy < 0) or not np.allclose(records.policy.sum(axis=1), 1.0, atol=POLICY_SUM_TOLERANCE):
        return "a policy row is negative or does not sum to 1"
    if np.any(np.abs(records.value) > 1):
        return "a value lies outside [-1, 1]"
    if not np.isin(records.policy_weight, (0, 1)).all():
        return "a policy weight is not 0 or 1"
    if not (np.isfinite(records.root_value).all() and np.all(np.abs(records.root_value) <= 1)):
        return "a root value is not a number in [-1, 1]"
    if not (np.isfinite(records.policy_surprise).all() and np.all(records.policy_surprise >= 0)):
        return "a policy surprise is negative or not a number"
    return None
