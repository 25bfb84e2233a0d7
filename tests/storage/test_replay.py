"""The shard index in Redis and the replay window: newest positions, bad shards set aside, symmetric samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from synthetic import make_records

from azjobs import keys
from azjobs.game_records import GameRecords
from azjobs.games import get_game
from azjobs.storage.replay import ReplayBuffer, list_shards, rebuild_index, register_shard
from azjobs.storage.shards import ShardInfo, write_shard

GAME = get_game("tictactoe")
RUN = "run-a"


def write(run_dir: Path, records: GameRecords, job_id: str = "job") -> ShardInfo:
    return write_shard(
        run_dir / "replay",
        records,
        game=GAME.name,
        job_id=job_id,
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )


def write_many(run_dir: Path, sizes: list[list[int]]) -> list[ShardInfo]:
    """One shard per entry of `sizes` (game lengths), ids running on from shard to shard."""
    infos, next_id = [], 0
    for i, lengths in enumerate(sizes):
        infos.append(write(run_dir, make_records(lengths, next_id), job_id=f"job{i}"))
        next_id += sum(lengths)
    return infos


def stored_ids(buffer: ReplayBuffer) -> list[int]:
    planes = buffer.planes[: buffer.size]
    ids = planes[:, 0, 0, 0].astype(int) + 256 * planes[:, 0, 0, 1].astype(int)
    # Each stored row must still be whole: its policy and value belong to the same id.
    assert np.array_equal(buffer.policy[: buffer.size].argmax(axis=1), ids % GAME.num_actions)
    assert np.array_equal(buffer.value[: buffer.size], (ids % 3) - 1)
    return sorted(ids.tolist())


def buffer_for(run_dir: Path, capacity: int, logs: list[str] | None = None, seed: int = 0) -> ReplayBuffer:
    log = logs.append if logs is not None else print
    return ReplayBuffer(run_dir, GAME, capacity=capacity, rng=np.random.default_rng(seed), log=log)


def test_register_and_list(redis_client: redis.Redis) -> None:
    infos = [ShardInfo("a.h5", 10, 2, 1.0), ShardInfo("b.h5", 7, 1, 2.0)]
    for info in infos:
        register_shard(redis_client, RUN, info)
    assert list_shards(redis_client, RUN) == infos
    assert redis_client.hgetall(keys.stats(RUN)) == {b"games": b"3", b"positions": b"17", b"shards": b"2"}
    assert list_shards(redis_client, "other-run") == []


def test_rebuild_index_after_redis_lost_everything(redis_client: redis.Redis, tmp_path: Path) -> None:
    infos = write_many(tmp_path, [[3, 4], [5], [2, 2, 2]])
    (tmp_path / "replay" / ".tmp-half.h5").write_bytes(b"partial")
    (tmp_path / "replay" / "broken.h5").write_bytes(b"not hdf5")
    register_shard(redis_client, RUN, infos[0])
    assert rebuild_index(redis_client, RUN, tmp_path) == 2
    assert list_shards(redis_client, RUN) == infos

    redis_client.flushall()
    assert rebuild_index(redis_client, RUN, tmp_path) == 3
    assert list_shards(redis_client, RUN) == infos
    assert redis_client.hgetall(keys.stats(RUN)) == {b"games": b"6", b"positions": b"18", b"shards": b"3"}
    assert rebuild_index(redis_client, RUN, tmp_path) == 0  # nothing is registered twice


def test_window_keeps_the_newest_positions_across_shards_and_wraps(tmp_path: Path) -> None:
    buffer = buffer_for(tmp_path, capacity=10)
    assert buffer.refresh() == 0  # no replay folder yet
    write_many(tmp_path, [[4], [2, 3], [3]])  # ids 0..11
    assert buffer.refresh() == 12
    assert (buffer.size, buffer.total_added) == (10, 12)
    assert stored_ids(buffer) == list(range(2, 12))

    write(tmp_path, make_records([3, 3], start_id=12), job_id="next")  # wraps around the ring's end
    assert buffer.refresh() == 6
    assert stored_ids(buffer) == list(range(8, 18))
    write(tmp_path, make_records([10, 15], start_id=18), job_id="big")  # more than the whole window
    assert buffer.refresh() == 25
    assert stored_ids(buffer) == list(range(33, 43))
    assert (buffer.size, buffer.total_added) == (10, 43)
    assert buffer.refresh() == 0


def test_first_refresh_reads_only_the_newest_shards(tmp_path: Path) -> None:
    buffer = buffer_for(tmp_path, capacity=6)
    assert buffer.refresh() == 0  # the trainer may start before the first shard
    write_many(tmp_path, [[4]] * 5)  # ids 0..19, four per shard
    assert buffer.refresh() == 8  # the two newest shards fill the window; the older three are skipped
    assert stored_ids(buffer) == list(range(14, 20))
    write(tmp_path, make_records([2], start_id=20), job_id="later")
    assert buffer.refresh() == 2
    assert stored_ids(buffer) == list(range(16, 22))


def test_bad_shard_is_moved_aside_and_the_rest_loaded(tmp_path: Path) -> None:
    infos = write_many(tmp_path, [[3], [50, 50], [4]])  # ids 0-2, 3-102, 103-106
    bad = tmp_path / "replay" / infos[1].name
    bad.write_bytes(bad.read_bytes()[:2000])
    (tmp_path / "replay" / ".tmp-writing.h5").write_bytes(b"partial")
    logs: list[str] = []
    buffer = buffer_for(tmp_path, capacity=100, logs=logs)
    assert buffer.refresh() == 7
    assert stored_ids(buffer) == [0, 1, 2, 103, 104, 105, 106]
    assert not bad.exists() and (tmp_path / "replay" / "bad" / infos[1].name).exists()
    assert len(logs) == 1 and "warning" in logs[0] and infos[1].name in logs[0] and "\n" not in logs[0]
    assert buffer.refresh() == 0 and len(logs) == 1


def test_sample_shapes_and_rows(tmp_path: Path) -> None:
    write_many(tmp_path, [[5, 5], [7]])
    buffer = buffer_for(tmp_path, capacity=64)
    buffer.refresh()
    planes, policy, value, _ = buffer.sample(32)
    assert planes.shape == (32, *GAME.planes_shape) and planes.dtype == np.uint8
    assert policy.shape == (32, GAME.num_actions) and policy.dtype == np.float32
    assert value.shape == (32,) and value.dtype == np.float32
    assert np.allclose(policy.sum(axis=1), 1.0)
    assert set(value.tolist()) <= {-1.0, 0.0, 1.0}


def dihedral_images(grid: np.ndarray) -> list[np.ndarray]:
    """The 8 images of a square grid (last two axes) under rotations and mirrors, computed independently."""
    images = []
    for turns in range(4):
        rotated = np.rot90(grid, turns, axes=(-2, -1))
        images += [rotated, np.flip(rotated, axis=-1)]
    return images


def test_samples_are_true_symmetries_of_the_stored_position(tmp_path: Path) -> None:
    # Own stone in the top-left corner, the opponent's beside it: no symmetry but the identity fixes it.
    planes = np.zeros((1, *GAME.planes_shape), dtype=np.uint8)
    planes[0, 0, 0, 0] = planes[0, 1, 0, 1] = 1
    policy = (np.arange(1, 10, dtype=np.float32) / 45)[None]  # a different probability on every cell
    records = GameRecords(
        planes, policy, np.array([1.0], np.float32), np.zeros(1, np.int32), np.ones(1, np.int8), np.ones(1, np.int32)
    )
    write(tmp_path, records)
    buffer = buffer_for(tmp_path, capacity=8, seed=3)
    buffer.refresh()
    plane_images = dihedral_images(planes[0])
    policy_images = dihedral_images(policy[0].reshape(3, 3))
    got_planes, got_policy, got_value, _ = buffer.sample(200)
    used = set()
    for p, pol in zip(got_planes, got_policy):
        matches = [k for k, image in enumerate(plane_images) if np.array_equal(p, image)]
        assert len(matches) == 1
        assert np.array_equal(pol.reshape(3, 3), policy_images[matches[0]])  # the policy moved with the board
        used.add(matches[0])
    assert used == set(range(8))
    assert np.all(got_value == 1.0)
    assert np.array_equal(buffer.planes[0], planes[0])  # sampling never changes the stored rows


def test_powerlaw_window() -> None:
    from azjobs.storage.replay import powerlaw_window

    c = 1000
    assert [powerlaw_window(n, c, 0.65, 0.4) for n in (0, 10, 1000)] == [0, 10, 1000]  # all the data up to c
    # KataGo's shape: it grows by `expand` rows per new row at first, then ever more slowly.
    assert powerlaw_window(1100, c, 0.65, 0.4) == pytest.approx(1000 + 0.4 * 100, abs=3)
    sizes = [powerlaw_window(n, c, 0.65, 0.4) for n in (2_000, 10_000, 100_000, 1_000_000)]
    assert sizes == sorted(sizes)
    assert [s / n for s, n in zip(sizes, (2_000, 10_000, 100_000, 1_000_000))] == sorted(
        [s / n for s, n in zip(sizes, (2_000, 10_000, 100_000, 1_000_000))], reverse=True
    )
    assert powerlaw_window(100_000, c, 0.65, 0.4) == int(c * (1 + 0.4 * ((100) ** 0.65 - 1) / 0.65))
    assert powerlaw_window(54_321, c, 1.0, 1.0) == 54_321  # exponent 1, one row per row: all the data


def test_sampling_from_the_newest_rows(tmp_path: Path) -> None:
    write_many(tmp_path, [[5] * 10, [5] * 10, [5] * 10])  # ids 0-149, in three shards
    # Symmetries would move the id bytes: sample this game without them.
    unsymmetric = type("NoSymmetries", (type(GAME),), {"num_symmetries": 1})()
    buffer = ReplayBuffer(tmp_path, unsymmetric, capacity=120, rng=np.random.default_rng(0))
    buffer.refresh()  # the ring has wrapped: it holds ids 30-149
    for window, newest in ((40, range(110, 150)), (120, range(30, 150)), (500, range(30, 150)), (1, [149])):
        planes, policy, _, _ = buffer.sample(2000, window=window)
        ids = planes[:, 0, 0, 0].astype(int) + 256 * planes[:, 0, 0, 1].astype(int)
        assert set(ids.tolist()) == set(newest), window
