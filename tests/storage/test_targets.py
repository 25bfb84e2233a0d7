"""Training targets on known shards: Q mixed into the value, duplicates merged keeping their mean, and
sampling weighted by policy surprise."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from synthetic import make_records

from azjobs.game_records import GameRecords
from azjobs.games import get_game
from azjobs.storage.replay import ReplayBuffer
from azjobs.storage.shards import write_shard
from azjobs.storage.targets import (
    TargetSettings,
    draw,
    find_duplicates,
    merge,
    position_hashes,
    surprise_cdf,
)

GAME = get_game("tictactoe")
# Symmetries would move the id bytes of the synthetic planes: sample this game without them.
UNSYMMETRIC = type("NoSymmetries", (type(GAME),), {"num_symmetries": 1})()


def write(run_dir: Path, records: GameRecords, job_id: str = "job") -> Path:
    info = write_shard(
        run_dir / "replay",
        records,
        game=GAME.name,
        job_id=job_id,
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )
    return run_dir / "replay" / info.name


def buffer_for(run_dir: Path, targets: TargetSettings, capacity: int = 1000, seed: int = 0) -> ReplayBuffer:
    buffer = ReplayBuffer(run_dir, UNSYMMETRIC, capacity=capacity, rng=np.random.default_rng(seed), targets=targets)
    buffer.refresh()
    return buffer


def ids_of(planes: np.ndarray) -> np.ndarray:
    return planes[:, 0, 0, 0].astype(int) + 256 * planes[:, 0, 0, 1].astype(int)


def with_root_values(records: GameRecords) -> GameRecords:
    """Records whose root value q of position id i is (i % 7) / 7 - 0.5, known in the test."""
    ids = np.arange(records.positions)
    q = ((ids % 7) / 7 - 0.5).astype(np.float32)
    return GameRecords(**{**records.__dict__, "root_value": q})


def test_value_targets_mix_the_root_value_and_the_result_as_documented(tmp_path: Path) -> None:
    records = with_root_values(make_records([5, 6, 4]))
    write(tmp_path, records)
    buffer = buffer_for(tmp_path, TargetSettings(q_weight=0.25))
    planes, _, value, _ = buffer.sample(400)
    ids = ids_of(planes)
    z, q = records.value[ids], records.root_value[ids]
    np.testing.assert_allclose(value, 0.75 * z + 0.25 * q, rtol=0, atol=1e-6)
    assert len(set(ids.tolist())) == records.positions
    # w = 1: the search's value alone; w = 0 (the default): the result alone, as before.
    planes, _, value, _ = buffer_for(tmp_path, TargetSettings(q_weight=1.0)).sample(100)
    np.testing.assert_allclose(value, records.root_value[ids_of(planes)], atol=1e-6)
    planes, _, value, _ = buffer_for(tmp_path, TargetSettings()).sample(100)
    np.testing.assert_array_equal(value, records.value[ids_of(planes)])


def test_a_shard_without_root_values_gives_the_result_alone(tmp_path: Path) -> None:
    """A shard written before format 3 has no Q: its value targets stay z whatever the weight."""
    records = with_root_values(make_records([5, 6]))
    path = write(tmp_path, records)
    with h5py.File(path, "a") as f:
        del f["root_value_N"], f["policy_surprise_N"]
        f.attrs["format_version"] = 2
    planes, _, value, _ = buffer_for(tmp_path, TargetSettings(q_weight=0.5)).sample(200)
    np.testing.assert_array_equal(value, records.value[ids_of(planes)])


def duplicated_records() -> GameRecords:
    """Twelve positions of which ids 0, 3, 6 and 9 show one board, 1 and 4 another, the rest once each."""
    records = make_records([4, 4, 4])
    planes = records.planes.copy()
    board = np.array([0, 1, 2, 0, 1, 5, 0, 7, 8, 0, 10, 11])  # the board each position shows
    planes[:, 0, 0, 0], planes[:, 0, 0, 1] = board, 0
    rng = np.random.default_rng(5)
    policy = rng.dirichlet(np.ones(GAME.num_actions), size=12).astype(np.float32)
    weight = np.ones(12, np.float32)
    weight[9] = 0  # a cheap search: no policy target there
    return GameRecords(**{**records.__dict__, "planes": planes, "policy": policy, "policy_weight": weight})


def test_position_hashes_tell_equal_boards_from_different_ones() -> None:
    records = duplicated_records()
    hashes = position_hashes(records.planes)
    board = records.planes[:, 0, 0, 0]
    for i in range(12):
        for j in range(12):
            assert (hashes[i] == hashes[j]) == (board[i] == board[j])
    other = records.planes.copy()
    other[:, 1, 2, 2] = 1  # one byte more on every board
    assert not np.isin(position_hashes(other), hashes).any()


def test_the_merge_keeps_the_mean_of_the_merged_targets() -> None:
    records = duplicated_records()
    rows = np.arange(12)
    hashes = position_hashes(records.planes)
    w = 0.8
    duplicates = find_duplicates(hashes, records.value, records.policy, records.policy_weight, rows)
    policy, value = records.policy.copy(), records.value.copy()
    merge(duplicates, rows, policy, value, records.policy_weight, w)
    groups = [np.array([0, 3, 6, 9]), np.array([1, 4])]
    for group in groups:
        np.testing.assert_allclose(value[group].mean(), records.value[group].mean(), atol=1e-6)
        np.testing.assert_allclose(value[group], w * records.value[group].mean() + (1 - w) * records.value[group])
        targets = group[records.policy_weight[group] == 1]  # id 9 was a cheap search: not averaged in
        mean = records.policy[targets].mean(axis=0)
        np.testing.assert_allclose(policy[targets].mean(axis=0), mean, atol=1e-6)
        np.testing.assert_allclose(policy[targets], w * mean + (1 - w) * records.policy[targets], atol=1e-6)
    np.testing.assert_array_equal(policy[9], records.policy[9])  # no policy target: its policy is kept
    alone = np.setdiff1d(rows, np.concatenate(groups))
    np.testing.assert_array_equal(value[alone], records.value[alone])
    np.testing.assert_array_equal(policy[alone], records.policy[alone])
    np.testing.assert_allclose(policy.sum(axis=1), 1, atol=1e-6)


def test_the_buffer_merges_duplicates_within_the_window_it_samples(tmp_path: Path) -> None:
    records = duplicated_records()
    write(tmp_path, records)
    buffer = buffer_for(tmp_path, TargetSettings(merge_weight=1.0), capacity=12)
    planes, policy, value, weight = buffer.sample(300)
    board = planes[:, 0, 0, 0]
    same = board == 0  # ids 0, 3, 6, 9: one merged target for them all
    np.testing.assert_allclose(value[same], records.value[[0, 3, 6, 9]].mean(), atol=1e-6)
    merged = policy[same & (weight == 1)]
    assert len(merged) and np.abs(merged - records.policy[[0, 3, 6]].mean(axis=0)).max() < 1e-6
    # The newest 4 rows (ids 8-11) show boards 8, 0, 10 and 11: each once, nothing to merge there.
    planes, policy, value, _ = buffer.sample(300, window=4)
    ids = np.select([planes[:, 0, 0, 0] == b for b in (8, 0, 10, 11)], [8, 9, 10, 11], -1)
    assert set(ids.tolist()) == {8, 9, 10, 11}
    np.testing.assert_array_equal(value, records.value[ids])
    np.testing.assert_array_equal(policy, records.policy[ids])


def test_surprise_weights_are_half_uniform_half_proportional_to_the_surprise() -> None:
    surprise = np.array([0.0, 1.0, 3.0, 0.0], np.float32)
    weights = np.diff(np.r_[0.0, surprise_cdf(surprise, 0.5)])
    np.testing.assert_allclose(weights, [0.125, 0.125 + 0.125, 0.125 + 0.375, 0.125])
    np.testing.assert_allclose(np.diff(np.r_[0.0, surprise_cdf(np.zeros(4, np.float32), 0.5)]), 1)  # none: uniform
    counts = np.bincount(draw(surprise_cdf(surprise, 1.0), 40_000, np.random.default_rng(0)), minlength=4)
    assert counts[0] == counts[3] == 0
    assert counts[2] / counts[1] == pytest.approx(3, rel=0.05)


def test_sampling_follows_the_policy_surprise(tmp_path: Path) -> None:
    records = make_records([6, 6])
    surprise = np.zeros(12, np.float32)
    surprise[[2, 7]] = [1.0, 2.0]
    write(tmp_path, GameRecords(**{**records.__dict__, "policy_surprise": surprise}))
    buffer = buffer_for(tmp_path, TargetSettings(surprise_weight=0.5), capacity=12, seed=1)
    counts = np.bincount(ids_of(buffer.sample(60_000)[0]), minlength=12) / 60_000
    expected = np.full(12, 0.5 / 12)
    expected[[2, 7]] += [0.5 / 3, 1.0 / 3]
    np.testing.assert_allclose(counts, expected, atol=0.006)
    # Targets are still each row's own: surprise changes how often a row is drawn, not what it teaches.
    planes, _, value, _ = buffer.sample(200)
    np.testing.assert_array_equal(value, records.value[ids_of(planes)])


def test_the_target_settings_come_from_the_runs_settings() -> None:
    from azjobs.settings import Settings

    assert TargetSettings.from_settings(Settings()).plain  # the defaults: today's targets
    chosen = Settings(value_target_q_weight=0.5, merge_duplicates=0.8, policy_surprise_weight=0.25)
    assert TargetSettings.from_settings(chosen) == TargetSettings(0.5, 0.8, 0.25)
