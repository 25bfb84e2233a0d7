"""Progressive simulations as a worker runs them: a self-play job queued with its count searches with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import torch
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.games import get_game
from azjobs.jobs import context, worker
from azjobs.net import build_model, to_bytes
from azjobs.run import Run, publish
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.train.schedule import SELFPLAY_JOB, top_up_queue

GAME = get_game("tictactoe")
SETTINGS = Settings(
    game="tictactoe",
    net_blocks=1,
    net_channels=8,
    num_simulations=16,
    games_per_job=4,
    temperature_moves=2,
    reuse_tree=False,  # every move's search evaluates its own simulations' leaves
)


@pytest.fixture(autouse=True)
def fresh_worker_process(keep_signal_handlers: None) -> Iterator[None]:
    try:
        yield
    finally:
        context.install(None)  # type: ignore[arg-type]


def test_a_job_searches_with_the_simulations_it_was_queued_with(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "ps"
    run = run_dir.name
    publish(redis_client, run, run_dir, SETTINGS)
    torch.manual_seed(1)
    WeightStore(redis_client, run, run_dir).publish(1, to_bytes(build_model(GAME, SETTINGS), {"version": 1}))
    queue = Queue(keys.selfplay_queue(run), connection=redis_client, serializer=JSONSerializer)
    top_up_queue(redis_client, run, queue, 1, simulations=2)
    plain = queue.enqueue(SELFPLAY_JOB, run, 7)  # as the trainer queues without progressive simulations
    ramped = queue.job_ids[0]

    worker.run(SETTINGS, Run(run, run_dir, redis_client), evaluator="local", name="w1", burst=True, say=lambda _: None)

    summaries = [
        Job.fetch(i, connection=redis_client, serializer=JSONSerializer).return_value() for i in (ramped, plain.id)
    ]
    assert [s["simulations"] for s in summaries] == [2, 16]
    # Each move evaluates at most its simulations' leaves (and its root): the ramped job far fewer per position.
    per_position = [s["leaf_evals"] / s["positions"] for s in summaries]
    assert per_position[0] <= 3 < per_position[1]
