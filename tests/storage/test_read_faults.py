"""Shards that fail to open for a reason that passes (a stale NFS handle, a file lock) are read again,
not set aside; shards that are set aside leave the run's counters."""

from __future__ import annotations

import errno
import fcntl
from pathlib import Path

import h5py
import numpy as np
import pytest
import redis
from synthetic import make_records

from azjobs import keys
from azjobs.games import get_game
from azjobs.storage import shards
from azjobs.storage.replay import (
    ReplayBuffer,
    list_shards,
    rebuild_index,
    register_shard,
    shard_names,
    unregister_shard,
)
from azjobs.storage.shards import ShardInfo, TransientShardError, read_shard, write_shard

GAME = get_game("tictactoe")
RUN = "rf"


def write(run_dir: Path, lengths: list[int], job_id: str) -> ShardInfo:
    return write_shard(
        run_dir / "replay",
        make_records(lengths),
        game=GAME.name,
        job_id=job_id,
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )


def buffer_for(
    run_dir: Path, logs: list[str], client: redis.Redis | None = None, waits: list[float] | None = None
) -> ReplayBuffer:
    on_set_aside = (lambda name: unregister_shard(client, RUN, name)) if client is not None else None
    return ReplayBuffer(
        run_dir,
        GAME,
        capacity=1000,
        rng=np.random.default_rng(0),
        log=logs.append,
        on_set_aside=on_set_aside,
        sleep=(waits.append if waits is not None else lambda s: None),
    )


def stats(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.stats(RUN)).items()}


def test_a_shard_locked_by_another_process_is_read_without_locks(tmp_path: Path) -> None:
    """HDF5 takes a shared lock to read; a mount without lock support (or a writer's exclusive lock)
    refuses it. Shards never change once landed, so the read takes none."""
    info = write(tmp_path, [3, 4], "locked")
    path = tmp_path / "replay" / info.name
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process's writer would hold it
        with pytest.raises(OSError, match="lock"):
            h5py.File(path, "r", locking=True).close()  # what reading with HDF5's default locking meets
        records = read_shard(path, game=GAME.name, planes_shape=GAME.planes_shape, num_actions=GAME.num_actions)
    assert records.positions == 7


class FlakyOpen:
    """h5py's open that fails with an OS error `failures` times, as a stale NFS handle does, then works."""

    def __init__(self, failures: int, code: int = errno.ESTALE) -> None:
        self.failures, self.code, self.calls = failures, code, 0
        self.real = h5py.File

    def __call__(self, *args: object, **kwargs: object) -> h5py.File:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(self.code, "Stale file handle")
        return self.real(*args, **kwargs)


def test_a_transient_read_error_is_retried_before_anything_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = write(tmp_path, [2, 3], "stale")
    flaky = FlakyOpen(failures=3)
    monkeypatch.setattr(shards.h5py, "File", flaky)
    logs: list[str] = []
    waits: list[float] = []
    buffer = buffer_for(tmp_path, logs, waits=waits)
    assert buffer.refresh() == 5
    # The window's look at the attributes fails (it goes on), the read fails twice, each time a short wait.
    assert flaky.calls == 4 and waits == [0.2, 0.5]
    assert shard_names(tmp_path / "replay") == [info.name] and not (tmp_path / "replay" / "bad").exists()
    assert logs == []


def test_a_shard_that_stays_unreadable_transiently_waits_for_later_refreshes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = write(tmp_path, [2, 3], "stale")
    flaky = FlakyOpen(failures=10**9)
    monkeypatch.setattr(shards.h5py, "File", flaky)
    logs: list[str] = []
    buffer = buffer_for(tmp_path, logs)
    assert buffer.refresh() == 0
    assert shard_names(tmp_path / "replay") == [info.name]  # left in place: not bad, perhaps
    assert "trying it again later" in logs[-1]
    flaky.failures = 0  # the mount recovers
    assert buffer.refresh() == 5


def test_transient_errors_are_told_from_bad_files(tmp_path: Path) -> None:
    garbage = tmp_path / "replay" / "x.h5"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(shards.ShardError) as caught:
        read_shard(garbage, game=GAME.name, planes_shape=GAME.planes_shape, num_actions=GAME.num_actions)
    assert not isinstance(caught.value, TransientShardError)


def test_a_set_aside_shard_leaves_the_counters(redis_client: redis.Redis, tmp_path: Path) -> None:
    good = write(tmp_path, [3, 3], "good")
    bad = write(tmp_path, [4, 5], "bad")
    for info in (good, bad):
        register_shard(redis_client, RUN, info)
    (tmp_path / "replay" / bad.name).write_bytes(b"garbage that landed")  # damaged after it was registered
    assert stats(redis_client) == {"games": 4, "positions": 15, "shards": 2}
    logs: list[str] = []
    assert buffer_for(tmp_path, logs, redis_client).refresh() == 6
    assert (tmp_path / "replay" / "bad" / bad.name).exists()
    assert stats(redis_client) == {"games": 2, "positions": 6, "shards": 1, "shards_set_aside": 1}
    assert [s.name for s in list_shards(redis_client, RUN)] == [good.name]
    assert not unregister_shard(redis_client, RUN, bad.name)  # only once
    assert register_shard(redis_client, RUN, bad)  # and it could be registered again, were it repaired


def test_a_shard_registers_once(redis_client: redis.Redis, tmp_path: Path) -> None:
    info = write(tmp_path, [3, 3], "once")
    assert register_shard(redis_client, RUN, info, {"jobs": 1})
    assert not register_shard(redis_client, RUN, info, {"jobs": 1})
    assert stats(redis_client) == {"games": 2, "positions": 6, "shards": 1, "jobs": 1}
    assert len(list_shards(redis_client, RUN)) == 1


def test_a_retried_write_of_the_same_job_keeps_the_first_shard(tmp_path: Path) -> None:
    first = write_shard(
        tmp_path / "replay",
        make_records([3, 3]),
        game=GAME.name,
        job_id="j",
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
        created=100.0,
    )
    again = write_shard(
        tmp_path / "replay",
        make_records([2, 2, 2, 2]),
        game=GAME.name,
        job_id="j",
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
        created=100.0,
    )
    assert again == first and first.positions == 6
    assert shard_names(tmp_path / "replay") == [first.name]
    assert [p.name for p in (tmp_path / "replay").iterdir()] == [first.name]  # no temporary file left


def test_rebuilding_the_index_counts_each_shard_once(redis_client: redis.Redis, tmp_path: Path) -> None:
    a = write(tmp_path, [3, 3], "a")
    write(tmp_path, [2, 2, 2], "b")
    register_shard(redis_client, RUN, a)
    assert rebuild_index(redis_client, RUN, tmp_path) == 1  # b only
    assert rebuild_index(redis_client, RUN, tmp_path) == 0
    assert stats(redis_client) == {"games": 5, "positions": 12, "shards": 2}
    redis_client.delete(keys.shards(RUN), keys.stats(RUN))  # the list and counters lost, the set of names kept
    assert rebuild_index(redis_client, RUN, tmp_path) == 2
    assert stats(redis_client) == {"games": 5, "positions": 12, "shards": 2}
