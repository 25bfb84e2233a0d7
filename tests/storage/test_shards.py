"""Replay shards: round trip, atomic naming, and every kind of bad shard raising ShardError."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from synthetic import make_records

from azjobs.game_records import GameRecords
from azjobs.games import get_game
from azjobs.storage.replay import shard_names
from azjobs.storage.shards import (
    FORMAT_VERSION,
    ShardError,
    ShardInfo,
    is_shard_name,
    read_shard,
    read_shard_info,
    write_shard,
)

GAME = get_game("tictactoe")


def write(replay_dir: Path, records: GameRecords, job_id: str = "job-1") -> ShardInfo:
    return write_shard(
        replay_dir,
        records,
        game=GAME.name,
        job_id=job_id,
        worker="host:1",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )


def read(path: Path, game: str = GAME.name) -> GameRecords:
    return read_shard(path, game=game, planes_shape=GAME.planes_shape, num_actions=GAME.num_actions)


def replace_dataset(path: Path, name: str, data: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        del f[name]
        f.create_dataset(name, data=data)


def test_round_trip(tmp_path: Path) -> None:
    records = make_records([5, 7, 3])
    info = write(tmp_path, records, job_id="abc/123")
    assert (info.positions, info.games) == (15, 3)
    path = tmp_path / info.name
    assert is_shard_name(info.name) and "/" not in info.name
    back = read(path)
    for field in GameRecords.__dataclass_fields__:
        a, b = getattr(records, field), getattr(back, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert f.attrs["game"] == GAME.name and f.attrs["job_id"] == "abc/123" and f.attrs["worker"] == "host:1"
        assert f.attrs["created"] == info.created and str(f.attrs["created_iso"]).startswith("20")
        assert f["planes_NCHW"].compression == "gzip" and f["planes_NCHW"].chunks is not None
    assert read_shard_info(path) == info
    assert ShardInfo.from_json(info.to_json()) == info
    assert [p.name for p in tmp_path.iterdir()] == [info.name]  # no temporary file left behind


def test_names_sort_by_time_and_temp_files_are_ignored(tmp_path: Path) -> None:
    names = [write(tmp_path, make_records([2]), job_id=f"z{9 - i}").name for i in range(3)]
    (tmp_path / ".tmp-0123-half-written.h5").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("not a shard")
    assert shard_names(tmp_path) == names  # creation order, whatever the job ids
    assert not is_shard_name(".tmp-0123-half-written.h5")


def test_write_refuses_inconsistent_records(tmp_path: Path) -> None:
    records = make_records([3, 3])
    bad = GameRecords(**{**records.__dict__, "game_lengths": np.array([3, 2], dtype=np.int32)})
    with pytest.raises(ShardError, match="game lengths"):
        write(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("keep_fraction", [0.0, 0.5, 0.9])
def test_truncated_file(tmp_path: Path, keep_fraction: float) -> None:
    path = tmp_path / write(tmp_path, make_records([40, 40])).name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(ShardError, match=path.name):
        read(path)


def test_garbage_and_missing_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00not hdf5 at all" * 100)
    with pytest.raises(ShardError, match="garbage.h5"):
        read(garbage)
    with pytest.raises(ShardError, match="missing.h5"):
        read(tmp_path / "missing.h5")
    with pytest.raises(ShardError):
        read_shard_info(garbage)


def test_wrong_game(tmp_path: Path) -> None:
    path = tmp_path / write(tmp_path, make_records([4])).name
    with pytest.raises(ShardError, match="tictactoe games, this run plays connect4"):
        read(path, game="connect4")


def test_wrong_format_version(tmp_path: Path) -> None:
    path = tmp_path / write(tmp_path, make_records([4])).name
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ShardError, match="format version"):
        read(path)


def test_shapes_not_fitting_the_game(tmp_path: Path) -> None:
    path = tmp_path / write(tmp_path, make_records([4])).name
    with pytest.raises(ShardError, match=r"policy_NA has shape \(4, 9\), expected \(4, 7\)"):
        read_shard(path, game=GAME.name, planes_shape=GAME.planes_shape, num_actions=7)
    with pytest.raises(ShardError, match="planes_NCHW has shape"):
        read_shard(path, game=GAME.name, planes_shape=(3, 6, 7), num_actions=GAME.num_actions)


@pytest.mark.parametrize(
    "dataset, change, message",
    [
        ("value_N", lambda r: np.r_[r.value, np.float32(0)].astype(np.float32), r"value_N has shape \(10,\)"),
        ("value_N", lambda r: np.where(np.arange(len(r.value)) == 2, np.nan, r.value).astype(np.float32), "NaN"),
        ("policy_NA", lambda r: np.where(r.policy > 0.4, np.inf, r.policy).astype(np.float32), "NaN"),
        ("value_N", lambda r: (r.value * 2).astype(np.float32), r"outside \[-1, 1\]"),
        ("policy_NA", lambda r: (r.policy * 0.5).astype(np.float32), "sum to 1"),
        ("value_N", lambda r: r.value.astype(np.float64), "float64, expected float32"),
        ("results_G", lambda r: (r.results * 3).astype(np.int8), "result"),
        ("game_lengths_G", lambda r: (r.game_lengths + 1).astype(np.int32), "game lengths"),
        ("policy_weight_N", lambda r: np.full(len(r.value), 0.5, np.float32), "policy weight is not 0 or 1"),
        ("root_value_N", lambda r: np.full(len(r.value), 1.5, np.float32), r"root value is not a number in \[-1, 1\]"),
        ("policy_surprise_N", lambda r: np.full(len(r.value), -0.1, np.float32), "policy surprise is negative"),
    ],
)
def test_bad_datasets(tmp_path: Path, dataset: str, change, message: str) -> None:
    records = make_records([4, 5])
    path = tmp_path / write(tmp_path, records).name
    replace_dataset(path, dataset, change(records))
    with pytest.raises(ShardError, match=message):
        read(path)


def test_missing_dataset_and_wrong_counts(tmp_path: Path) -> None:
    path = tmp_path / write(tmp_path, make_records([4, 5])).name
    with h5py.File(path, "a") as f:
        f.attrs["positions"] = 8
    with pytest.raises(ShardError, match="expected .8, 2, 3, 3. for 8 positions"):
        read(path)
    with h5py.File(path, "a") as f:
        f.attrs["positions"] = 9
        del f["policy_NA"]
    with pytest.raises(ShardError, match="dataset policy_NA is missing"):
        read(path)


def test_policy_weights_round_trip(tmp_path: Path) -> None:
    records = make_records([4, 5])
    weight = (np.arange(9) % 4 == 0).astype(np.float32)  # playout cap randomization: some full searches
    records = GameRecords(**{**records.__dict__, "policy_weight": weight})
    np.testing.assert_array_equal(read(tmp_path / write(tmp_path, records).name).policy_weight, weight)


def test_a_version_1_shard_has_policy_targets_everywhere(tmp_path: Path) -> None:
    """Shards written before policy weights existed stay readable: every position was a full search."""
    records = make_records([4, 5])
    path = tmp_path / write(tmp_path, records).name
    with h5py.File(path, "a") as f:
        del f["policy_weight_N"]
        f.attrs["format_version"] = 1
    back = read(path)
    np.testing.assert_array_equal(back.policy_weight, np.ones(9, np.float32))
    np.testing.assert_array_equal(back.policy, records.policy)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(ShardError, match="dataset policy_weight_N is missing"):
        read(path)


def test_root_values_and_surprises_round_trip(tmp_path: Path) -> None:
    records = make_records([4, 5])
    q = np.linspace(-1, 1, 9).astype(np.float32)
    surprise = np.linspace(0, 2, 9).astype(np.float32)
    records = GameRecords(**{**records.__dict__, "root_value": q, "policy_surprise": surprise})
    back = read(tmp_path / write(tmp_path, records).name)
    np.testing.assert_array_equal(back.root_value, q)
    np.testing.assert_array_equal(back.policy_surprise, surprise)


def test_a_version_2_shard_reads_with_the_result_as_its_root_value(tmp_path: Path) -> None:
    records = make_records([4, 5])
    path = tmp_path / write(tmp_path, records).name
    with h5py.File(path, "a") as f:
        del f["root_value_N"], f["policy_surprise_N"]
        f.attrs["format_version"] = 2
    back = read(path)
    np.testing.assert_array_equal(back.root_value, records.value)
    np.testing.assert_array_equal(back.policy_surprise, np.zeros(9, np.float32))
