"""Evaluation jobs as a worker runs them: matches, accuracy and the gate, recorded in Redis and on disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import torch
from click.testing import CliRunner
from labels import labelled_lines
from rq.job import Job

from azjobs import keys
from azjobs.cli import main
from azjobs.eval import cost, records
from azjobs.eval.match import MatchRecord
from azjobs.games import get_game
from azjobs.jobs import context, evaluate, worker
from azjobs.net import build_model, read_metadata, to_bytes
from azjobs.run import Run, publish, write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore, versions_in

GAME = get_game("tictactoe")
SETTINGS = Settings(
    game="tictactoe",
    net_blocks=1,
    net_channels=8,
    num_simulations=4,
    eval_simulations=4,
    eval_games=6,
    eval_every_versions=2,
    eval_opponents="previous,random,oneply",
)


@pytest.fixture(autouse=True)
def fresh_worker_process(keep_signal_handlers: None) -> Iterator[None]:
    try:
        yield
    finally:
        context.install(None)  # type: ignore[arg-type]


def weights(version: int, seed: int, step: int = 0) -> bytes:
    torch.manual_seed(seed)
    meta = {"version": version, "game": GAME.name, "step": step, "train_seconds": step / 10}
    return to_bytes(build_model(GAME, SETTINGS), meta)


def make_run(client: redis.Redis, run_dir: Path, settings: Settings = SETTINGS) -> str:
    run = run_dir.name
    publish(client, run, run_dir, settings)
    store = WeightStore(client, run, run_dir)
    store.publish(1, weights(1, seed=1))
    store.publish(3, weights(3, seed=3, step=300))
    return run


def work(client: redis.Redis, run: str, run_dir: Path, settings: Settings = SETTINGS) -> None:
    worker.run(settings, Run(run, run_dir, client), evaluator="local", name="w1", burst=True, say=lambda _: None)


def ctx(client: redis.Redis, run_dir: Path, settings: Settings = SETTINGS) -> evaluate.EvalContext:
    return evaluate.EvalContext.create(Run(run_dir.name, run_dir, client), settings)


def test_a_match_job(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    job = evaluate.enqueue_match(redis_client, run, "net:3", "oneply", 6)
    work(redis_client, run, run_dir)

    summary = Job.fetch(job.id, connection=redis_client, serializer=evaluate.JSONSerializer).return_value()
    [stored] = records.read(redis_client, run, MatchRecord)
    assert summary == json.loads(records.to_json(stored))
    assert (stored.id, stored.a, stored.b, stored.games, stored.openings) == (job.id, "net:3", "oneply", 6, 3)
    spent = cost.read(redis_client, run)  # the worker's time in the job: evaluation's share of it
    assert spent.seconds["match"] >= stored.seconds - 1e-3 > 0 and spent.share == 1.0  # it may round to ms
    assert stored.a_first_wins + stored.a_first_draws + stored.a_first_losses == 3  # each opening both ways
    assert stored.versions == {"net:3": {"version": 3, "step": 300, "train_seconds": 30.0}}
    assert records.read_files(run_dir, MatchRecord) == [stored]


def test_an_accuracy_job(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    (run_dir / "evals").mkdir(parents=True)
    (run_dir / "evals" / records.POSITIONS_FILE).write_text("\n".join(labelled_lines(40)) + "\n")
    queued = evaluate.enqueue_version(redis_client, run, run_dir, SETTINGS, 3, previous=1)
    assert queued == 5  # net:1 (previous), random, oneply, and accuracy with 4 sims and with 0
    work(redis_client, run, run_dir)

    scored = records.read(redis_client, run, records.AccuracyRecord)
    assert sorted(a.sims for a in scored) == [0, 4]
    assert all(a.player == "net:3" and a.positions == 40 and a.version["step"] == 300 for a in scored)
    assert all(0 <= a.strong_accuracy <= a.weak_accuracy <= 1 for a in scored)
    played = {(m.a, m.b) for m in records.read(redis_client, run, MatchRecord)}
    assert played == {("net:3", "net:1"), ("net:3", "random"), ("net:3", "oneply")}


def test_what_a_version_plays(redis_client: redis.Redis, tmp_path: Path) -> None:
    assert evaluate.scheduled_opponents(SETTINGS, 1) == ["random", "oneply"]  # no previous version yet
    assert evaluate.scheduled_opponents(SETTINGS, 5, previous=3) == ["net:3", "random", "oneply"]
    assert evaluate.scheduled_opponents(SETTINGS, 5, previous=3, retired={"random"}) == ["net:3", "oneply"]
    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    # Version 1 also sets up the ladder of baselines: oneply against random.
    assert evaluate.enqueue_version(redis_client, run, run_dir, SETTINGS, 1, ladder=True) == 3
    queue = evaluate.eval_queue(redis_client, run)
    jobs = [queue.fetch_job(i) for i in queue.job_ids]
    assert [(j.args[1], j.args[2], j.args[5]) for j in jobs] == [
        ("net:1", "random", "schedule"),
        ("net:1", "oneply", "schedule"),
        ("oneply", "random", "ladder"),
    ]
    assert all(j.func_name == evaluate.MATCH_JOB and j.args[3] == SETTINGS.eval_games for j in jobs)
    assert len({j.args[4] for j in jobs}) == 3  # each its own seed


@pytest.mark.parametrize("threshold, promoted", [(0.5, True), (0.55, False)])
def test_the_gate(redis_client: redis.Redis, tmp_path: Path, threshold: float, promoted: bool) -> None:
    """Identical weights score exactly half against each other (each opening both ways), so the
    gate at 0.5 lets the candidate through and the one at 0.55 keeps it out."""
    settings = SETTINGS.replace(gating=True, gating_threshold=threshold)
    run_dir = tmp_path / "gate"
    run = make_run(redis_client, run_dir, settings)
    store = WeightStore(redis_client, run, run_dir)
    store.stage(4, weights(3, seed=3))  # the same network as the served version 3
    assert store.latest_version() == 3 and store.staged_versions() == [4]
    assert versions_in(run_dir / "weights") == [1, 3]
    evaluate.enqueue_gate(redis_client, run, 4)
    work(redis_client, run, run_dir, settings)

    [record] = records.read(redis_client, run, MatchRecord)
    assert (record.purpose, record.a, record.b, record.a_score) == ("gate", "net:4", "net:3", 0.5)
    assert record.promoted is promoted
    assert store.latest_version() == (4 if promoted else 3)
    assert versions_in(run_dir / "weights") == ([1, 3, 4] if promoted else [1, 3])
    if promoted:
        assert read_metadata(store.load(4))["version"] == "3"  # the staged bytes, served unchanged


def test_a_gate_behind_the_served_version_is_skipped(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "gate"
    make_run(redis_client, run_dir, SETTINGS.replace(gating=True))
    assert evaluate.run_gate(ctx(redis_client, run_dir), 2, seed=1) is None
    assert records.read(redis_client, run_dir.name, MatchRecord) == []


def test_records_come_back_from_the_storage_root(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    first = evaluate.run_match(ctx(redis_client, run_dir), "random", "oneply", 4, seed=1, purpose="ladder")
    redis_client.delete(keys.matches(run))  # a Redis that lost its data
    assert records.rebuild(redis_client, run, run_dir) == 1
    assert records.rebuild(redis_client, run, run_dir) == 0
    assert records.read(redis_client, run, MatchRecord) == [first]


def test_eval_command(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    result = CliRunner().invoke(
        main, ["eval", "net:3", "alphabeta:2", "--games", "4", "--redis-url", redis_url, "--run-dir", str(run_dir)]
    )
    assert result.exit_code == 0, result.output
    queue = evaluate.eval_queue(redis_client, run)
    [job] = [queue.fetch_job(i) for i in queue.job_ids]
    assert job.args[1:4] == ["net:3", "alphabeta:2", 4] and job.args[5] == "manual"
    for args, error in ((["net", "random"], "name the weights version"), (["net:3", "best"], "unknown player 'best'")):
        bad = CliRunner().invoke(main, ["eval", *args, "--redis-url", redis_url, "--run-dir", str(run_dir)])
        assert bad.exit_code != 0 and error in bad.stderr
    missing = CliRunner().invoke(
        main, ["eval", "random", "oneply", "--redis-url", redis_url, "--run-dir", str(tmp_path / "other")]
    )
    assert missing.exit_code != 0 and "no run 'other'" in missing.stderr


def test_waiting_for_a_job(redis_client: redis.Redis, tmp_path: Path) -> None:
    from azjobs.errors import AzjobsError

    run_dir = tmp_path / "ev"
    run = make_run(redis_client, run_dir)
    good = evaluate.enqueue_match(redis_client, run, "oneply", "random", 4)
    bad = evaluate.enqueue_match(redis_client, run, "net:99", "random", 4)  # no such version: the job fails
    work(redis_client, run, run_dir)
    assert evaluate.wait_for(good)["a"] == "oneply"
    with pytest.raises(AzjobsError, match=f"evaluation job {bad.id} failed"):
        evaluate.wait_for(bad)


def test_players_from_anywhere(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    from azjobs.errors import AzjobsError
    from azjobs.players.export import export_agent
    from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic

    run_dir, other = tmp_path / "ev", tmp_path / "other"
    run = make_run(redis_client, run_dir)
    write_file(other, SETTINGS)
    write_atomic(other / WEIGHTS_DIR / file_name(2), weights(2, seed=2, step=200))
    pytest.importorskip("onnxruntime", reason="the export extra (pip install 'azjobs[export]')")
    export_agent(other, tmp_path / "agent.onnx")  # on the storage root, beside the runs
    export_agent(other, tmp_path / "agent.pt", format="torchscript")

    record = evaluate.run_match(ctx(redis_client, run_dir), "net:3", "net@other:2", 2, seed=1)
    assert (record.a, record.b, record.games) == ("net:3", "net@other:2", 2)
    assert record.versions == {"net:3": {"version": 3, "step": 300, "train_seconds": 30.0}}  # the run's own only

    def queue(a: str, b: str) -> list:
        result = CliRunner().invoke(
            main, ["eval", a, b, "--games", "2", "--redis-url", redis_url, "--run-dir", str(run_dir)]
        )
        assert result.exit_code == 0, result.output
        jobs = [
            evaluate.eval_queue(redis_client, run).fetch_job(i) for i in evaluate.eval_queue(redis_client, run).job_ids
        ]
        return jobs[-1].args[1:3]

    # Written as a worker on any machine finds them: beside the run on the storage root.
    assert queue(f"agent:{tmp_path / 'agent.onnx'}", f"net@{other}:2") == ["agent:agent.onnx", "net@other:2"]
    records.save(None, run, run_dir, accuracy_of(1))
    assert queue("net:best", f"net@{run_dir}:3") == ["net:1", "net:3"]  # net:best now; this run's own: net:V
    work(redis_client, run, run_dir)
    played = {(m.a, m.b): m for m in records.read(redis_client, run, records.MatchRecord)}
    assert played["agent:agent.onnx", "net@other:2"].games == 2 and played["net:1", "net:3"].games == 2
    evaluate.run_match(ctx(redis_client, run_dir), "net@other:2", "random", 2, seed=2)  # a chain to the anchor
    fitted = records.refit(redis_client, run, run_dir, records.read(redis_client, run, records.MatchRecord))
    assert {"net@other:2", "agent:agent.onnx", "net:1", "net:3", "random"} <= fitted.keys()  # all in the ratings
    # A TorchScript file holds code: neither `azjobs eval` nor a job takes one.
    refused = CliRunner().invoke(
        main, ["eval", f"agent:{tmp_path / 'agent.pt'}", "random", "--redis-url", redis_url, "--run-dir", str(run_dir)]
    )
    assert refused.exit_code != 0 and "plays ONNX agents only" in refused.stderr
    with pytest.raises(AzjobsError, match="plays ONNX agents only"):
        evaluate.run_match(ctx(redis_client, run_dir), "agent:agent.pt", "random", 2, seed=3)
    bad = CliRunner().invoke(main, ["eval", "net@other", "random", "--redis-url", redis_url, "--run-dir", str(run_dir)])
    assert bad.exit_code != 0 and "name the weights version" in bad.stderr


def accuracy_of(version: int) -> records.AccuracyRecord:
    return records.AccuracyRecord(
        id=f"acc-{version}",
        time=1.0,
        player=f"net:{version}",
        sims=0,
        positions=10,
        weak_accuracy=0.9,
        strong_accuracy=0.8,
        phases={},
        random_weak_accuracy=0.4,
        seconds=1.0,
    )
