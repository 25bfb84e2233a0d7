"""Only azjobs' own job functions run: a job naming anything else, enqueued straight into the run's Redis,
fails in RQ's failed registry with the reason, and its module is never imported."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import torch
from rq import Callback, Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.games import get_game
from azjobs.jobs import context, worker
from azjobs.net import build_model, to_bytes
from azjobs.run import Run, publish
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore

SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8, num_simulations=4, games_per_job=2)
PLANTED = "planted_jobs_mod"


@pytest.fixture(autouse=True)
def fresh_worker_process(keep_signal_handlers: None) -> Iterator[None]:
    try:
        yield
    finally:
        context.install(None)  # type: ignore[arg-type]
        sys.modules.pop(PLANTED, None)


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that leaves a file behind when imported and another when its function runs."""
    folder = tmp_path / "planted"
    folder.mkdir()
    (folder / f"{PLANTED}.py").write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        Path({str(folder / "imported")!r}).write_text("imported")

        def run(*args):
            Path({str(folder / "ran")!r}).write_text("ran")
    """)
    )
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    return folder


def make_run(client: redis.Redis, run_dir: Path) -> str:
    run = run_dir.name
    publish(client, run, run_dir, SETTINGS)
    game = get_game(SETTINGS.game)
    torch.manual_seed(1)
    WeightStore(client, run, run_dir).publish(
        1, to_bytes(build_model(game, SETTINGS), {"version": 1, "game": game.name})
    )
    return run


def failure_of(client: redis.Redis, job_id: str) -> str:
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    assert job.get_status() == "failed"
    assert job_id in job.failed_job_registry.get_job_ids()
    return job.latest_result().exc_string


def test_a_foreign_function_is_refused_unimported(redis_client: redis.Redis, tmp_path: Path, planted: Path) -> None:
    run_dir = tmp_path / "al"
    run = make_run(redis_client, run_dir)
    queue = Queue(keys.selfplay_queue(run), connection=redis_client, serializer=JSONSerializer)
    touched = tmp_path / "os-system-ran"
    system = queue.enqueue("os.system", f"touch {touched}", retry=None)
    module = queue.enqueue(f"{PLANTED}.run", 1)
    callback = queue.enqueue("azjobs.jobs.selfplay.selfplay", run, 3, on_failure=Callback(f"{PLANTED}.run"))
    own = queue.enqueue("azjobs.jobs.selfplay.selfplay", run, 4)

    worker.run(
        SETTINGS, Run(run, run_dir, redis_client), evaluator="local", name="al-1", burst=True, say=lambda _: None
    )

    assert not touched.exists()
    assert not (planted / "imported").exists() and not (planted / "ran").exists() and PLANTED not in sys.modules
    said = failure_of(redis_client, system.id)
    assert "RefusedJob" in said and "function 'os.system' was not imported or run" in said
    assert "not one of azjobs' job functions" in said
    assert f"function '{PLANTED}.run' was not imported or run" in failure_of(redis_client, module.id)
    assert "it names on_failure, which azjobs never enqueues" in failure_of(redis_client, callback.id)
    assert Job.fetch(own.id, connection=redis_client, serializer=JSONSerializer).get_status() == "finished"


def test_a_refused_job_is_not_retried(redis_client: redis.Redis, tmp_path: Path) -> None:
    from rq import Retry

    run_dir = tmp_path / "rt"
    run = make_run(redis_client, run_dir)
    queue = Queue(keys.selfplay_queue(run), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("builtins.print", "hello", retry=Retry(max=3))

    worker.run(
        SETTINGS, Run(run, run_dir, redis_client), evaluator="local", name="rt-1", burst=True, say=lambda _: None
    )

    assert "function 'builtins.print' was not imported or run" in failure_of(redis_client, job.id)
    assert queue.count == 0


def test_a_hand_written_job_hash_naming_an_instance_is_refused(redis_client: redis.Redis, tmp_path: Path) -> None:
    """The job's data written by hand, as an intruder would: an allowed name, called on an instance."""
    run_dir = tmp_path / "hw"
    run = make_run(redis_client, run_dir)
    queue = Queue(keys.selfplay_queue(run), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("azjobs.jobs.selfplay.selfplay", run, 5)
    data = json.dumps(["azjobs.jobs.selfplay.selfplay", "an instance", [run, 5], {}]).encode()
    redis_client.hset(Job.key_for(job.id), "data", zlib.compress(data))

    worker.run(
        SETTINGS, Run(run, run_dir, redis_client), evaluator="local", name="hw-1", burst=True, say=lambda _: None
    )

    assert "it names an instance to call it on" in failure_of(redis_client, job.id)


def test_the_allow_list_names_azjobs_job_functions() -> None:
    for name in worker.JOB_FUNCTIONS:
        module, _, function = name.rpartition(".")
        assert module.startswith("azjobs.jobs.") and callable(getattr(importlib.import_module(module), function))
