"""The evaluation schedule against a real Redis: evaluations held within `eval_budget` of the workers'
time as recorded, and baselines the versions beat nearly always retired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from azjobs import keys
from azjobs.eval import cost, records, retire
from azjobs.eval.match import MatchRecord
from azjobs.jobs import evaluate
from azjobs.settings import Settings
from azjobs.train import schedule

SETTINGS = Settings(game="tictactoe", eval_every_versions=1, eval_opponents="previous,random", eval_games=20)
RUN = "sch"
SELFPLAY_S = 8.0  # worker-seconds of self-play between two versions
EVAL_S = 25.0  # worker-seconds of one evaluation


def queued(client: redis.Redis) -> list[tuple[str, str]]:
    queue = evaluate.eval_queue(client, RUN)
    return [(job.args[1], job.args[2]) for job in map(queue.fetch_job, queue.job_ids)]


def run_evaluations(client: redis.Redis) -> None:
    """What a worker does with the queued evaluation: its seconds counted, the queue emptied."""
    cost.add(client, RUN, "match", EVAL_S * 0.6)
    cost.add(client, RUN, "accuracy", EVAL_S * 0.4)
    evaluate.eval_queue(client, RUN).empty()


def test_the_share_stays_within_the_budget(redis_client: redis.Redis, tmp_path: Path) -> None:
    """400 versions, 8 s of self-play each, 25 s per evaluation: every evaluation after the first keeps
    the share within 5%, each comes at the first version where it does, and each plays the last one."""
    evaluated, logs = [], []
    for version in range(1, 401):
        cost.add(redis_client, RUN, "selfplay", SELFPLAY_S)
        jobs = queued(redis_client)
        if schedule.evaluate_if_due(redis_client, RUN, tmp_path, SETTINGS, version, logs.append):
            opponents = [b for a, b in queued(redis_client)[len(jobs) :]]
            assert opponents == ([f"net:{evaluated[-1]}"] if evaluated else []) + ["random"]
            evaluated.append(version)
            run_evaluations(redis_client)

    spent = cost.read(redis_client, RUN)
    assert spent.share <= SETTINGS.eval_budget and len(evaluated) == 6
    for k, version in enumerate(evaluated[1:], start=2):
        assert cost.share(k * EVAL_S, version * SELFPLAY_S) <= SETTINGS.eval_budget  # within, once it ran
        assert cost.share(k * EVAL_S, (version - 1) * SELFPLAY_S) > SETTINGS.eval_budget  # not a version sooner
    assert f"trainer: queued 2 evaluation jobs for version {evaluated[-1]}" in logs
    state = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.eval_schedule(RUN)).items()}
    assert (int(state["version"]), int(state["evaluations"])) == (evaluated[-1], 6)
    assert state["waiting"] == (
        f"evaluation has taken {spent.share:.1%} of the workers' time; one more (about 25 s) would pass "
        "eval_budget (0.05)"
    )


def test_no_evaluation_while_one_is_pending(redis_client: redis.Redis, tmp_path: Path) -> None:
    settings = SETTINGS.replace(eval_opponents="previous,random,oneply")
    assert schedule.evaluate_if_due(redis_client, RUN, tmp_path, settings, 1, print) == 3  # with the ladder
    cost.add(redis_client, RUN, "selfplay", 10_000.0)  # the budget would allow another at once
    assert schedule.evaluate_if_due(redis_client, RUN, tmp_path, settings, 2, print) == 0
    queue = evaluate.eval_queue(redis_client, RUN)
    matches = list(queue.job_ids)
    evaluate.enqueue_gate(redis_client, RUN, 2)  # gates come with every version: they hold nothing back
    for job_id in matches:
        queue.remove(job_id)
    assert schedule.evaluate_if_due(redis_client, RUN, tmp_path, settings, 3, print) == 3
    assert queued(redis_client)[1:] == [("net:3", "net:1"), ("net:3", "random"), ("net:3", "oneply")]


@pytest.mark.parametrize("every, versions", [(1, [1, 2, 3, 4]), (3, [1, 4])])
def test_without_a_budget_every_due_version_is_evaluated(
    redis_client: redis.Redis, tmp_path: Path, every: int, versions: list[int]
) -> None:
    settings = SETTINGS.replace(eval_budget=1.0, eval_every_versions=every)
    due = [v for v in range(1, 5) if schedule.evaluate_if_due(redis_client, RUN, tmp_path, settings, v, print)]
    assert due == versions  # the jobs of each still wait: without a budget they hold nothing
    assert queued(redis_client)[-1] == (f"net:{versions[-1]}", "random")


def test_a_redis_that_lost_the_schedule_finds_it_in_the_records(redis_client: redis.Redis, tmp_path: Path) -> None:
    for version in (1, 11, 21):
        save(redis_client, tmp_path, version, "random", wins=10, games=20)
    assert schedule.evaluated(redis_client, RUN) == schedule.Evaluated(last=21, count=3)
    schedule.evaluate_if_due(redis_client, RUN, tmp_path, SETTINGS.replace(eval_budget=1.0), 22, print)
    assert queued(redis_client) == [("net:22", "net:21"), ("net:22", "random")]


# Retiring baselines.


def save(client: redis.Redis, run_dir: Path, version: int, b: str, wins: int, games: int, draws: int = 0) -> None:
    match = MatchRecord(
        id=f"m{version}-{b}",
        time=float(version),
        purpose="schedule",
        a=f"net:{version}",
        b=b,
        a_wins=wins,
        draws=draws,
        b_wins=games - wins - draws,
        a_first_wins=0,
        a_first_draws=0,
        a_first_losses=0,
        openings=games // 2,
        opening_moves=2,
        seconds=1.0,
    )
    records.save(client, RUN, run_dir, match)


def test_lower_bound() -> None:
    assert retire.lower_bound(80, 80) == pytest.approx(80 / (80 + retire.Z**2))  # all won: n / (n + z^2)
    assert retire.lower_bound(80, 80) > 0.95 > retire.lower_bound(20, 20)
    assert retire.lower_bound(79.5, 80) < 0.95 < retire.lower_bound(99.5, 100)  # one draw in 80, in 100
    assert retire.lower_bound(10, 20) < 0.5 < retire.lower_bound(15, 20)


def test_a_baseline_beaten_nearly_always_is_retired(redis_client: redis.Redis, tmp_path: Path) -> None:
    """Versions 1-5 beat random in 99 of 100 games and oneply in 90: random is retired, oneply stays;
    the newest 80 games are pooled (version 1's loss against random falls out of them)."""
    settings = SETTINGS.replace(eval_opponents="previous,random,oneply", eval_budget=1.0)
    for version in range(1, 6):
        save(redis_client, tmp_path, version, "random", wins=19 if version == 1 else 20, games=20)
        save(redis_client, tmp_path, version, "oneply", wins=18, games=20)
    redis_client.hset(keys.eval_schedule(RUN), mapping={"version": 5, "evaluations": 5})
    logs: list[str] = []
    assert schedule.evaluate_if_due(redis_client, RUN, tmp_path, settings, 6, logs.append) == 2
    assert queued(redis_client) == [("net:6", "net:5"), ("net:6", "oneply")]
    why = "versions 2-5 scored 80 of 80 games against it (lower bound 0.954)"
    assert f"trainer: baseline random retired from the evaluations: {why}" in logs
    assert json.loads(redis_client.hget(keys.eval_schedule(RUN), "retired")) == {"random": why}
    # It stays retired (its records stay), and is said so once.
    logs.clear()
    schedule.evaluate_if_due(redis_client, RUN, tmp_path, settings, 7, logs.append)
    assert queued(redis_client)[-2:] == [("net:7", "net:6"), ("net:7", "oneply")]
    assert not [line for line in logs if "retired" in line]
    assert len(records.read(redis_client, RUN, MatchRecord)) == 10


def test_the_hardest_baseline_stays_when_versions_play_no_one_else(redis_client: redis.Redis, tmp_path: Path) -> None:
    settings = SETTINGS.replace(eval_opponents="random,oneply", eval_budget=1.0)
    for version in range(1, 5):
        save(redis_client, tmp_path, version, "random", wins=20, games=20)
        save(redis_client, tmp_path, version, "oneply", wins=19, draws=1, games=20)
    assert schedule.retired_baselines(redis_client, RUN, settings.replace(eval_retire_score=0.9)) == {
        "random": "versions 1-4 scored 80 of 80 games against it (lower bound 0.954)"
    }
    with_previous = settings.replace(eval_opponents="previous,random,oneply", eval_retire_score=0.9)
    assert schedule.retired_baselines(redis_client, RUN, with_previous).keys() == {"random", "oneply"}
    assert schedule.retired_baselines(redis_client, RUN, settings.replace(eval_retire_score=1.0)) == {}
