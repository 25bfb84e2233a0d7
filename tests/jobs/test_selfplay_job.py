"""The self-play job as a worker runs it: a real RQ SimpleWorker, JSON jobs, shards on disk and in the index."""

from __future__ import annotations

import json
import threading
import zlib
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from rq import Queue
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.errors import AzjobsError
from azjobs.eval import cost
from azjobs.game_records import GameRecords
from azjobs.games import get_game
from azjobs.inference import server
from azjobs.inference.runner import RunnerOptions
from azjobs.jobs import context, worker
from azjobs.jobs.selfplay import selfplay
from azjobs.net import build_model, to_bytes
from azjobs.run import Run, publish
from azjobs.settings import Settings
from azjobs.storage.replay import list_shards, shard_names
from azjobs.storage.shards import read_shard
from azjobs.storage.weights import WeightStore

GAME = get_game("tictactoe")
SELFPLAY = "azjobs.jobs.selfplay.selfplay"
SETTINGS = Settings(
    game="tictactoe",
    net_blocks=1,
    net_channels=8,
    num_simulations=4,
    games_per_job=4,
    temperature_moves=2,
    weight_sync_interval=4,
)


@pytest.fixture(autouse=True)
def fresh_worker_process(keep_signal_handlers: None) -> Iterator[None]:
    """Each test is a new worker process: no context left from the one before."""
    try:
        yield
    finally:
        context.install(None)  # type: ignore[arg-type]


def weights(version: int, seed: int) -> bytes:
    torch.manual_seed(seed)
    return to_bytes(build_model(GAME, SETTINGS), {"version": version, "game": GAME.name})


def publish_version(run: str, run_dir: str, version: int) -> int:
    """An RQ job of this test: publish another weights version while the worker runs."""
    store = WeightStore(context.current(run).redis, run, Path(run_dir))
    store.publish(version, weights(version, seed=version))
    return version


def make_run(client: redis.Redis, run_dir: Path, settings: Settings = SETTINGS) -> str:
    run = run_dir.name
    publish(client, run, run_dir, settings)
    WeightStore(client, run, run_dir).publish(1, weights(1, seed=1))
    return run


def selfplay_queue(client: redis.Redis, run: str) -> Queue:
    return Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)


def work(client: redis.Redis, run: str, run_dir: Path, settings: Settings = SETTINGS, name: str = "w1") -> list[str]:
    said: list[str] = []
    # This test's own job (publish_version) is allowed besides azjobs' job functions.
    job_class = worker.allowing(frozenset({f"{__name__}.publish_version"}))
    worker.run(
        settings,
        Run(run, run_dir, client),
        evaluator="local",
        name=name,
        burst=True,
        say=said.append,
        job_class=job_class,
    )
    return said


def test_selfplay_job_through_a_real_worker(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "sp"
    run = make_run(redis_client, run_dir)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 7)
    # The job RQ stores is JSON (RQ compresses it with zlib), not pickle.
    raw = zlib.decompress(redis_client.hget(Job.key_for(job.id), "data"))
    assert json.loads(raw) == [SELFPLAY, None, [run, 7], {}]

    said = work(redis_client, run, run_dir, name="sp.worker-1")

    job = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
    assert job.get_status() == "finished", job.latest_result()
    summary = job.return_value()
    assert json.loads(json.dumps(summary)) == summary  # a plain JSON dict
    assert summary["games"] == SETTINGS.games_per_job
    shards = list_shards(redis_client, run)
    assert [s.name for s in shards] == shard_names(run_dir / "replay") == [summary["shard"]]
    records = read_shard(
        run_dir / "replay" / summary["shard"],
        game=GAME.name,
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )
    assert summary["positions"] == records.positions == int(records.game_lengths.sum()) == shards[0].positions
    assert summary["games"] == records.games == shards[0].games
    wins = (summary["first_player_wins"], summary["draws"], summary["second_player_wins"])
    assert sum(wins) == summary["games"]
    assert summary["weights_versions"] == [1] and set(records.weights_version) == {1}
    assert summary["leaf_evals"] > 0
    stats = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.stats(run)).items()}
    assert stats["games"] == summary["games"] and stats["positions"] == summary["positions"]
    assert stats["jobs"] == 1 and stats["shards"] == 1 and stats["leaf_evals"] == summary["leaf_evals"]
    spent = cost.read(redis_client, run)  # the worker's time in the job, for evaluation's share
    assert spent.selfplay_seconds >= summary["seconds"] - 1e-3 > 0 and spent.eval_seconds == 0  # it rounds to ms
    assert any("stopped" in line for line in said)
    # So is its result.
    stored = json.loads(b64decode(redis_client.xrange(Result.get_key(job.id))[-1][1][b"return_value"]))
    assert stored == summary
    # The worker's heartbeat names it and its evaluator.
    assert redis_client.smembers(keys.processes(run)) == {b"worker:sp.worker-1"}
    beat = redis_client.hgetall(keys.heartbeat(run, "worker", "sp.worker-1"))
    assert beat[b"evaluator"] == b"local" and beat[b"role"] == b"worker"


def shard_of(client: redis.Redis, run_dir: Path, job: Job) -> GameRecords:
    name = Job.fetch(job.id, connection=client, serializer=JSONSerializer).return_value()["shard"]
    return read_shard(
        run_dir / "replay" / name, game=GAME.name, planes_shape=GAME.planes_shape, num_actions=GAME.num_actions
    )


def versions_of(client: redis.Redis, run: str, job_id: str) -> list[int]:
    return Job.fetch(job_id, connection=client, serializer=JSONSerializer).return_value()["weights_versions"]


@pytest.mark.parametrize(("interval", "second_version"), [(4, 2), (9, 1)])
def test_weight_sync_interval(redis_client: redis.Redis, tmp_path: Path, interval: int, second_version: int) -> None:
    """A worker evaluating in-process checks for new weights once `weight_sync_interval` games are played."""
    settings = SETTINGS.replace(weight_sync_interval=interval)
    run_dir = tmp_path / "sync"
    run = make_run(redis_client, run_dir, settings)
    queue = selfplay_queue(redis_client, run)
    first = queue.enqueue(SELFPLAY, run, 1)
    queue.enqueue(f"{__name__}.publish_version", run, str(run_dir), 2)
    second = queue.enqueue(SELFPLAY, run, 1)  # the same seed: the same games, unless the weights changed

    work(redis_client, run, run_dir, settings)

    assert versions_of(redis_client, run, first.id) == [1]
    assert versions_of(redis_client, run, second.id) == [second_version]
    a, b = (shard_of(redis_client, run_dir, job) for job in (first, second))
    assert set(a.weights_version) == {1} and set(b.weights_version) == {second_version}
    assert len(list_shards(redis_client, run)) == 2
    if second_version == 1:
        np.testing.assert_array_equal(a.planes, b.planes)
        np.testing.assert_array_equal(a.policy, b.policy)


def test_job_outside_a_worker_says_so() -> None:
    context.install(None)  # type: ignore[arg-type]
    with pytest.raises(AzjobsError, match="must run inside `azjobs worker`"):
        selfplay("nope", 1)


def test_job_of_another_run_is_refused(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "mine"
    run = make_run(redis_client, run_dir)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, "theirs", 1)
    work(redis_client, run, run_dir)
    job = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
    assert job.get_status() == "failed"
    assert "reached a worker of run 'mine'" in job.latest_result().exc_string
    assert list_shards(redis_client, run) == []


def test_selfplay_job_through_the_inference_server(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """The real pipeline in one process: a worker with two groups in flight, gpu-serve in a thread."""
    settings = SETTINGS.replace(games_per_job=10, games_in_flight=6, inference_batch_size=3, inference_wait_ms=1.0)
    run_dir = tmp_path / "remote"
    run = make_run(redis_client, run_dir, settings)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 5)
    stop, lines = threading.Event(), []
    serving = threading.Thread(
        target=server.run,
        args=(settings, Run(run, run_dir, redis.Redis.from_url(redis_url))),
        kwargs={
            "device": "cpu",
            "options": RunnerOptions(precision="fp32", channels_last="off"),
            "stop": stop,
            "log": lines.append,
            "name": "srv",
        },
    )
    serving.start()
    try:
        said: list[str] = []
        worker.run(
            settings, Run(run, run_dir, redis_client), evaluator="remote", name="w-remote", burst=True, say=said.append
        )
    finally:
        stop.set()
        serving.join(timeout=10)
    summary = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer).return_value()
    assert summary["games"] == 10 and summary["weights_versions"] == [1]
    records = shard_of(redis_client, run_dir, job)
    assert records.games == 10 and records.positions == summary["positions"]
    beats = {b["id"]: b for b in heartbeat.read_all(redis_client, run)}
    # Every leaf went through the server, in requests of one group (3 games) each.
    assert int(beats["srv"]["positions"]) == summary["leaf_evals"]
    assert int(beats["srv"]["requests"]) * 3 >= summary["leaf_evals"]
    assert beats["w-remote"]["positions"] == str(summary["positions"])
    assert beats["w-remote"]["leaf_evals"] == str(summary["leaf_evals"])


def test_the_job_reports_policy_targets_and_resignations(redis_client: redis.Redis, tmp_path: Path) -> None:
    """Playout cap randomization and resignation through a real worker: the shard flags the full searches,
    the summary and the run's counters count the resignations and the played-out games."""
    # resign_value 0.9: a random network's values are below it, so nearly every game has a resignation.
    settings = SETTINGS.replace(games_per_job=16, full_search_prob=0.5, resign_value=0.9, resign_playout_share=0.5)
    run_dir = tmp_path / "resign"
    run = make_run(redis_client, run_dir, settings)
    job = selfplay_queue(redis_client, run).enqueue(SELFPLAY, run, 3)
    work(redis_client, run, run_dir, settings)
    summary = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer).return_value()
    records = shard_of(redis_client, run_dir, job)
    assert summary["policy_targets"] == int(records.policy_weight.sum())
    assert 0 < summary["policy_targets"] < summary["positions"]
    assert summary["resigned"] > 0 and summary["resign_checked"] > 0
    assert summary["resigned"] + summary["resign_checked"] <= summary["games"]
    assert 0 <= summary["false_resigns"] <= summary["resign_checked"]
    stats = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.stats(run)).items()}
    assert [stats[k] for k in ("resigned", "resign_checked", "false_resigns")] == [
        summary["resigned"],
        summary["resign_checked"],
        summary["false_resigns"],
    ]
