"""Self-play and evaluation jobs under faults: a retried job's games and results land once, a full disk
holds the games back instead of losing them, and a folder that is not the run's is refused."""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
import redis
from disks import small_tmpfs
from rq import Retry
from rq.job import Job
from rq.serializers import JSONSerializer
from test_selfplay_job import SELFPLAY, SETTINGS, make_run, selfplay_queue, work

from azjobs import keys
from azjobs.eval import records
from azjobs.eval.match import MatchRecord
from azjobs.jobs import context, evaluate
from azjobs.jobs import selfplay as selfplay_module
from azjobs.run import Run
from azjobs.storage import marker, shards
from azjobs.storage.replay import list_shards, shard_names
from azjobs.storage.shards import ShardInfo


@pytest.fixture(autouse=True)
def fresh_worker_process(keep_signal_handlers: None) -> Iterator[None]:
    try:
        yield
    finally:
        context.install(None)  # type: ignore[arg-type]


def stats(client: redis.Redis, run: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.stats(run)).items()}


def fetch(client: redis.Redis, job: Job) -> Job:
    return Job.fetch(job.id, connection=client, serializer=JSONSerializer)


def assert_landed_once(client: redis.Redis, run: str, run_dir: Path) -> ShardInfo:
    names = shard_names(run_dir / "replay")
    index = list_shards(client, run)
    assert len(names) == 1 and [s.name for s in index] == names
    assert sorted(os.listdir(run_dir / "replay")) == names  # no second shard, no temporary file
    counted = stats(client, run)
    assert (counted["games"], counted["positions"], counted["shards"], counted["jobs"]) == (
        index[0].games,
        index[0].positions,
        1,
        1,
    )
    assert index[0].games == SETTINGS.games_per_job
    return index[0]


def test_a_job_run_twice_lands_its_games_once(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "twice"
    run = make_run(redis_client, run_dir)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 7)
    work(redis_client, run, run_dir)
    first = fetch(redis_client, job).return_value()
    again = fetch(redis_client, job).perform()  # the same job once more (as a retry or a second worker runs it)
    assert again["shard"] == first["shard"] and again["landed_before"] and not again["registered_now"]
    assert_landed_once(redis_client, run, run_dir)


class RedisBlip:
    """Registration meets a dropped connection once: before Redis ran it, or after (the reply lost)."""

    def __init__(self, real, after: bool) -> None:  # type: ignore[no-untyped-def]
        self.real, self.after, self.calls = real, after, 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 1:
            if self.after:
                self.real(*args, **kwargs)
            raise redis.ConnectionError("Connection closed by server.")
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("after", [False, True], ids=["before-redis-ran-it", "reply-lost"])
def test_a_job_that_failed_between_landing_and_registering_is_retried_once(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    run_dir = tmp_path / "blip"
    run = make_run(redis_client, run_dir)
    blip = RedisBlip(selfplay_module.register_shard, after)
    monkeypatch.setattr(selfplay_module, "register_shard", blip)
    job = selfplay_queue(redis_client, run).enqueue_call(SELFPLAY, args=(run, 3), retry=Retry(max=1))
    work(redis_client, run, run_dir)  # fails on the blip, RQ retries it, the retry finds the shard
    job = fetch(redis_client, job)
    assert job.get_status() == "finished" and blip.calls == 2
    assert job.return_value()["landed_before"] and job.return_value()["registered_now"] is (not after)
    assert_landed_once(redis_client, run, run_dir)


def test_an_evaluation_run_twice_is_recorded_once(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    ctx = evaluate.EvalContext.create(Run(run, run_dir, redis_client), SETTINGS)
    real = records._append_once
    calls = []

    def blip(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("Connection closed by server.")  # the file landed, Redis did not answer
        return real(*args, **kwargs)

    monkeypatch.setattr(records, "_append_once", blip)
    with pytest.raises(redis.ConnectionError):
        evaluate.run_match(ctx, "random", "oneply", 4, seed=1, id="job-1")
    landed = records.read_files(run_dir, MatchRecord)
    again = evaluate.run_match(ctx, "random", "oneply", 4, seed=2, id="job-1")  # the retry
    third = evaluate.run_match(ctx, "random", "oneply", 4, seed=3, id="job-1")
    assert again == third == landed[0]  # not played again
    assert records.read(redis_client, run, MatchRecord) == landed
    assert records.read_files(run_dir, MatchRecord) == landed and len(landed) == 1
    assert records.rebuild(redis_client, run, run_dir) == 0


class DiskFullFor:
    """The shard file's creation fails with ENOSPC `times` times, as on a disk with no room, then works."""

    def __init__(self, times: int) -> None:
        self.times, self.failed = times, 0
        self.real = h5py.File

    def __call__(self, name, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if mode == "w" and self.failed < self.times:
            self.failed += 1
            raise OSError(errno.ENOSPC, "No space left on device", str(name))
        return self.real(name, mode, *args, **kwargs)


def test_a_full_disk_holds_the_games_until_there_is_room(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "full"
    run = make_run(redis_client, run_dir)
    full = DiskFullFor(times=3)
    monkeypatch.setattr(shards.h5py, "File", full)
    monkeypatch.setattr(selfplay_module, "FULL_DISK_RETRY_S", 0.01)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 5)
    work(redis_client, run, run_dir)
    assert fetch(redis_client, job).get_status() == "finished" and full.failed == 3
    assert_landed_once(redis_client, run, run_dir)
    said = capsys.readouterr().out
    assert said.count("storage root full: no space left on device writing") == 1  # said once, not per try
    assert f"keeping {SETTINGS.games_per_job} games in memory" in said


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a disk that really fills (root only)."""
    with small_tmpfs(tmp_path / "disk", 4) as mount:
        yield mount


def test_a_really_full_disk_holds_the_games(
    redis_client: redis.Redis, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = small_disk / "rf"
    run = make_run(redis_client, run_dir)
    monkeypatch.setattr(selfplay_module, "FULL_DISK_RETRY_S", 0.05)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    for size in (1 << 16, 512, 1):
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError:
            pass
    os.close(fd)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 5)
    seen: list[tuple[str, list[str]]] = []

    def make_room_later() -> None:
        """Once the job has played and found no room (it holds on), free the disk."""
        try:
            while fetch(redis_client, job).get_status() == "queued":
                threading.Event().wait(0.05)
            threading.Event().wait(1.0)
            seen.append((fetch(redis_client, job).get_status(), shard_names(run_dir / "replay")))
        finally:
            filler.unlink()

    freeing = threading.Thread(target=make_room_later)
    freeing.start()
    work(redis_client, run, run_dir)  # RQ's worker wants the main thread (its signal handlers)
    freeing.join()
    assert seen == [("started", [])]  # held, not failed, not written
    assert fetch(redis_client, job).get_status() == "finished"
    assert_landed_once(redis_client, run, run_dir)


def test_a_worker_refuses_a_folder_without_the_runs_marker(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "storage" / "mk"
    run = make_run(redis_client, run_dir)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 1)
    expected = marker.read(run_dir)
    empty = tmp_path / "local-disk" / "mk"  # the storage root not mounted: an empty folder of that name
    empty.mkdir(parents=True)
    look_alike = tmp_path / "other-root" / "mk"  # another run's folder of the same name
    look_alike.mkdir(parents=True)
    (look_alike / marker.MARKER_FILE).write_text("0123456789abcdef")
    for folder, problem in ((empty, "has no marker file"), (look_alike, "belongs to another run")):
        with pytest.raises(marker.StorageMismatchError) as refused:
            work(redis_client, run, folder)
        line = str(refused.value)
        assert str(folder) in line and problem in line and f"expected marker {expected}" in line
        assert "mount the storage root" in line and "--run-dir" in line and "\n" not in line
        assert not (folder / "replay").exists()
    assert fetch(redis_client, job).get_status() == "queued" and list_shards(redis_client, run) == []
    assert stats(redis_client, run) == {}


def test_a_job_that_finds_the_marker_gone_registers_nothing(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "gone"
    run = make_run(redis_client, run_dir)
    selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 1)
    work(redis_client, run, run_dir)  # the worker starts on the mounted root and sets its context up
    later = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 2)
    (run_dir / marker.MARKER_FILE).unlink()  # then the root goes away under it
    with pytest.raises(marker.StorageMismatchError, match="has no marker file"):
        fetch(redis_client, later).perform()
    assert len(shard_names(run_dir / "replay")) == 1 and len(list_shards(redis_client, run)) == 1  # the first only


def test_a_worker_removes_a_killed_writers_temporary_shard(redis_client: redis.Redis, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "storage"))
    from test_atomic import killed_writer

    run_dir = tmp_path / "tmps"
    run = make_run(redis_client, run_dir)
    left = killed_writer(run_dir / "replay" / "20260101T000000.000000Z-x.h5")
    said = []
    from azjobs.jobs import worker

    worker.run(SETTINGS, Run(run, run_dir, redis_client), evaluator="local", name="w", burst=True, say=said.append)
    assert not left.exists() and any("removed 1 temporary files" in line for line in said)
