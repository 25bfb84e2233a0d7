"""A run's status from Redis: processes alive or dead by their heartbeats, queue counts, tables and JSON."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rich.console import Console
from rq import Queue
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cli import main
from azjobs.cluster import heartbeat, status
from azjobs.cluster.local_mode import write_url_file
from azjobs.settings import ENV_PREFIX

RUN = "st"
SELFPLAY = "azjobs.jobs.selfplay.selfplay"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture
def live_run(redis_client: redis.Redis) -> redis.Redis:
    """A run with a trainer, a server, a live worker, a dead worker, queued jobs and counters."""
    heartbeat.beat(redis_client, RUN, "trainer", "gpu-1", {"step": 120, "version": 3, "device": "cuda"})
    heartbeat.beat(
        redis_client,
        RUN,
        "gpu-serve",
        "gpu-2",
        {
            "evals_per_s": 1500.5,
            "weights_version": 3,
            "device": "cuda:0",
            "precision": "bf16+channels_last",
            "batch_size": 128,
            "batch_fill": 0.937,
            "forward_ms": 4.21,
            "wait_ms": 0.33,
            "queue_wait_ms": 0.81,
        },
    )
    heartbeat.beat(redis_client, RUN, "worker", "cpu-10", {"evaluator": "remote"})
    heartbeat.beat(redis_client, RUN, "worker", "cpu-11", {"evaluator": "local"})
    # cpu-11 last beat long ago: killed without a word.
    redis_client.hset(keys.heartbeat(RUN, "worker", "cpu-11"), "time", time.time() - heartbeat.DEAD_AFTER_S - 5)
    redis_client.delete(keys.alive(RUN, "worker", "cpu-11"))  # silent for DEAD_AFTER_S, by Redis' clock
    redis_client.sadd(keys.processes(RUN), "worker:gone-1")  # its hash expired: forgotten
    redis_client.hset(keys.stats(RUN), mapping={"games": 1234, "positions": 9876, "shards": 5})
    redis_client.hset(
        keys.trainer(RUN),
        mapping={"step": 120, "policy_loss": 1.23456, "value_loss": 0.5, "steps_per_s": 12.5, "waiting": ""},
    )
    redis_client.set(keys.weights_latest(RUN), 3)
    queue = Queue(keys.selfplay_queue(RUN), connection=redis_client, serializer=JSONSerializer)
    for seed in (1, 2):
        queue.enqueue(SELFPLAY, RUN, seed)
    redis_client.rpush(keys.requests(RUN), b"a", b"b", b"c")
    return redis_client


def by_id(processes: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {p["id"]: p for p in processes}


def test_collect(live_run: redis.Redis) -> None:
    snap = status.collect(live_run, RUN)
    procs = by_id(snap.processes)
    assert set(procs) == {"gpu-1", "gpu-2", "cpu-10", "cpu-11"}
    assert {pid: p["alive"] for pid, p in procs.items()} == {
        "gpu-1": "True",
        "gpu-2": "True",
        "cpu-10": "True",
        "cpu-11": "False",
    }
    assert procs["cpu-11"]["role"] == "worker" and procs["cpu-11"]["evaluator"] == "local"
    assert live_run.smembers(keys.processes(RUN)) == {
        b"trainer:gpu-1",
        b"gpu-serve:gpu-2",
        b"worker:cpu-10",
        b"worker:cpu-11",
    }
    assert snap.queues[keys.selfplay_queue(RUN)] == {"queued": 2, "running": 0, "finished": 0, "failed": 0}
    assert snap.queues[keys.eval_queue(RUN)] == {"queued": 0, "running": 0, "finished": 0, "failed": 0}
    assert snap.stats == {"games": "1234", "positions": "9876", "shards": "5"}
    assert snap.trainer["step"] == "120"
    assert snap.weights_version == 3
    assert snap.pending_requests == 3


def test_collect_on_an_empty_run(redis_client: redis.Redis) -> None:
    snap = status.collect(redis_client, "nothing-here")
    assert snap.processes == [] and snap.stats == {} and snap.weights_version is None
    assert all(counts["queued"] == 0 for counts in snap.queues.values())


def rendered(snap: status.Snapshot, **kwargs: object) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(status.render(snap, **kwargs))
    return console.export_text()


def test_render_shows_dead_processes_and_counts(live_run: redis.Redis) -> None:
    text = rendered(status.collect(live_run, RUN))
    lines = text.splitlines()
    assert "azjobs run st" in lines[0]
    row = {pid: next(line for line in lines if f" {pid} " in line) for pid in ("cpu-10", "cpu-11", "gpu-1")}
    assert "dead" in row["cpu-11"] and "alive" not in row["cpu-11"]
    assert "alive" in row["cpu-10"] and "evaluator remote" in row["cpu-10"]
    assert "step 120" in row["gpu-1"] and "v3" in row["gpu-1"]
    server = next(line for line in lines if " gpu-2 " in line)
    for figure in ("bf16+channels_last", "fill 0.94 of 128", "forward 4.2 ms", "gather 0.3 ms", "queue wait 0.8 ms"):
        assert figure in server
    assert "1,234" in text and "9,876" in text and "1.235" in text
    assert "1,500" in text  # evaluations/s summed over live servers
    queue_row = next(line for line in lines if keys.selfplay_queue(RUN) in line)
    assert queue_row.replace("│", " ").split()[1:] == ["2", "0", "0", "0"]


def test_render_rate_and_waiting(live_run: redis.Redis) -> None:
    before = status.collect(live_run, RUN)
    live_run.hincrby(keys.stats(RUN), "games", 100)
    live_run.hset(keys.trainer(RUN), "waiting", "waiting for 4000 positions (have 10)")
    after = status.collect(live_run, RUN)
    after = status.Snapshot(**{**after.to_dict(), "time": before.time + 60.0})  # one minute later
    text = rendered(after, previous=before, title="my title")
    assert "my title" in text
    assert "1,334  (100 games/min)" in text
    assert "waiting for 4000 positions (have 10)" in text


def test_render_false_resignations(live_run: redis.Redis) -> None:
    assert "false resignations" not in rendered(status.collect(live_run, RUN))  # resignation off
    live_run.hset(keys.stats(RUN), mapping={"resigned": 300, "resign_checked": 40, "false_resigns": 2})
    text = rendered(status.collect(live_run, RUN))
    line = next(line for line in text.splitlines() if "false resignations" in line)
    assert "300" in line and "2 of 40 (5.0%)" in line


def test_status_json_command(live_run: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--json", "--redis-url", redis_url, "--run-dir", str(tmp_path / RUN)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "run",
        "time",
        "stats",
        "trainer",
        "weights_version",
        "queues",
        "processes",
        "pending_requests",
        "ratings",
        "accuracy",
        "run_settings",
        "overrides",
        "evaluation",
    }
    assert data["run"] == RUN and data["weights_version"] == 3 and data["pending_requests"] == 3
    assert data["queues"][keys.selfplay_queue(RUN)]["queued"] == 2
    assert {p["id"]: p["alive"] for p in data["processes"]}["cpu-11"] == "False"


def test_status_shows_evaluations_share_of_the_workers(live_run: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    from azjobs.eval import cost
    from azjobs.settings import Settings

    assert "no jobs finished yet" in rendered(status.collect(live_run, RUN))
    live_run.set(keys.settings(RUN), Settings(eval_budget=0.04).to_json())
    for kind, seconds in (("selfplay", 900.0), ("selfplay", 50.0), ("match", 30.0), ("accuracy", 15.0), ("gate", 5.0)):
        cost.add(live_run, RUN, kind, seconds)
    retired = {"random": "versions 11-41 scored 80 of 80 games against it (lower bound 0.954)"}
    live_run.hset(keys.eval_schedule(RUN), mapping={"version": 41, "evaluations": 5, "retired": json.dumps(retired)})

    text = " ".join(rendered(status.collect(live_run, RUN)).split())
    assert "evaluation's share 5.0% of the workers' time (50 of 1,000 s; budget 4%)" in text
    assert "versions evaluated 5 (the last: 41)" in text
    assert "baselines retired random" in text
    result = CliRunner().invoke(main, ["status", "--json", "--redis-url", redis_url, "--run-dir", str(tmp_path / RUN)])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout)["evaluation"]
    assert evaluation["share"] == 0.05 and evaluation["budget"] == 0.04
    assert (evaluation["eval_seconds"], evaluation["selfplay_seconds"]) == (50.0, 950.0)
    assert evaluation["seconds"] == {"selfplay": 950.0, "match": 30.0, "accuracy": 15.0, "gate": 5.0}
    assert (evaluation["evaluated"], evaluation["evaluations"], evaluation["retired"]) == (41, 5, retired)


def test_status_table_command(live_run: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--run-dir", str(tmp_path / RUN)], env={"AZJOBS_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert "azjobs run st" in result.stdout and "cpu-11" in result.stdout


def test_status_finds_a_running_local_mode(live_run: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    run_dir = tmp_path / RUN
    run_dir.mkdir()
    write_url_file(run_dir, redis_url)  # as a live `azjobs run` (this process) writes it
    result = CliRunner().invoke(main, ["status", "--json", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights_version"] == 3


def test_ratings_and_accuracy(live_run: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    from azjobs.eval import records
    from azjobs.eval.match import MatchRecord

    run_dir = tmp_path / RUN
    for version, step, score in ((1, 0, (0, 0, 10)), (11, 500, (9, 0, 1))):
        match = MatchRecord(
            id=f"m{version}",
            time=float(version),
            purpose="schedule",
            a=f"net:{version}",
            b="random",
            a_wins=score[2],
            draws=score[1],
            b_wins=score[0],
            a_first_wins=0,
            a_first_draws=0,
            a_first_losses=0,
            openings=5,
            opening_moves=2,
            seconds=1.0,
            sims=10,
            versions={f"net:{version}": {"version": version, "step": step}},
        )
        records.save(live_run, RUN, run_dir, match)
        for sims, weak in ((10, 0.5 + version / 100), (0, 0.4 + version / 100)):
            records.save(
                live_run,
                RUN,
                run_dir,
                records.AccuracyRecord(
                    id=f"a{version}-{sims}",
                    time=float(version),
                    player=f"net:{version}",
                    sims=sims,
                    positions=100,
                    weak_accuracy=weak,
                    strong_accuracy=weak - 0.1,
                    phases={},
                    random_weak_accuracy=0.42,
                    seconds=1.0,
                    version={"version": version, "step": step},
                ),
            )
    records.refit(live_run, RUN, run_dir, records.read(live_run, RUN, MatchRecord))

    snap = status.collect(live_run, RUN)
    assert list(snap.ratings) == ["net:1", "random", "net:11"]  # best first: net:1 won every game
    assert snap.ratings["random"] == {"elo": 0.0, "se": 0.0, "games": 20}
    assert [(a["player"], a["sims"], a["weak_accuracy"]) for a in snap.accuracy] == [
        ("net:11", 10, 0.61),
        ("net:11", 0, 0.51),
    ]
    text = render_text(snap)
    assert "ratings (random = 0)" in text and "net:11 (newest)" in text
    assert "accuracy (net:11, 10 sims)" in text and "weak 61.0%" in text and "network alone" in text


def render_text(snap: status.Snapshot) -> str:
    console = Console(width=160, record=True, file=open(os.devnull, "w"))
    console.print(status.render(snap))
    return console.export_text()


def test_the_summary_of_azjobs_run_says_what_evaluation_cost(redis_client: redis.Redis) -> None:
    from azjobs.cluster.local_mode import summarize
    from azjobs.eval import cost

    cost.add(redis_client, RUN, "selfplay", 1140.0)
    cost.add(redis_client, RUN, "accuracy", 60.0)
    redis_client.hset(keys.eval_schedule(RUN), mapping={"version": 7, "evaluations": 3})
    console = Console(record=True, width=300, color_system=None)
    summarize(redis_client, RUN, console)
    assert console.export_text().strip() == (
        "azjobs run: evaluation's share: 5.0% of the workers' time (60 of 1,200 s); versions evaluated: 3 (the last: 7)"
    )
