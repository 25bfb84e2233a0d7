"""`azjobs bench soak --system`, short: the whole system under a fast fault schedule ends with nothing lost,
nothing counted twice, weights only rising and memory flat; and the soak's checks catch what they name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from azjobs.bench.system_soak import FAULTS, failed_checks


@pytest.mark.system
def test_short_system_soak() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_")}
    command = [
        sys.executable,
        "-m",
        "azjobs",
        "bench",
        "soak",
        "--system",
        "--seconds",
        "80",
        "--fault-every",
        "12",
        "--workers",
        "2",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == (1 if report["checks_failed"] else 0), done.stderr
    assert set(report["faults"]) == set(FAULTS) and all(n >= 1 for n in report["faults"].values()), report["faults"]
    replay = report["replay"]
    assert replay["finished_jobs"] > 0, report
    assert replay["games_counted"] == replay["games_on_disk"], replay
    assert replay["positions_counted"] == replay["positions_on_disk"], replay
    assert replay["listed_and_missing"] == replay["listed_twice"] == replay["on_disk_not_listed"] == 0, replay
    assert replay["jobs_in_two_shards"] == replay["finished_jobs_not_counted_once"] == 0, replay
    assert report["weights"]["decreases"] == 0, report["weights"]
    assert report["died_unbidden"] == [], report["died_unbidden"]
    assert report["memory"] and all(m["flat"] for m in report["memory"].values()), report["memory"]
    assert report["checks_failed"] == [], f"{report['checks_failed']} (logs kept in {report.get('kept')})"


def clean_report() -> dict:
    replay = {
        "games_counted": 80,
        "games_on_disk": 80,
        "positions_counted": 500,
        "positions_on_disk": 500,
        "finished_jobs": 10,
        "finished_jobs_not_counted_once": 0,
        "jobs_in_two_shards": 0,
        "listed_and_missing": 0,
        "listed_twice": 0,
        "on_disk_not_listed": 0,
    }
    return {
        "replay": replay,
        "weights": {"first": 1, "last": 9, "decreases": 0},
        "died_unbidden": [],
        "memory": {"trainer#1": {"flat": True}},
    }


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"replay": {"games_counted": 88}}, "games counted once"),
        ({"replay": {"jobs_in_two_shards": 1}}, "every job in one shard"),
        ({"replay": {"listed_and_missing": 1}}, "no shard listed and missing"),
        ({"replay": {"on_disk_not_listed": 2}}, "no shard on disk unlisted"),
        ({"replay": {"finished_jobs_not_counted_once": 1}}, "finished jobs counted once"),
        ({"weights": {"decreases": 1}}, "weights versions only rising"),
        ({"weights": {"last": 1}}, "the run made progress"),
        ({"died_unbidden": ["gpu-serve#2 (exit 1)"]}, "no process died unbidden"),
        ({"memory": {"worker-1#1": {"flat": False}}}, "memory flat"),
    ],
)
def test_each_check_fails_alone(change: dict, failed: str) -> None:
    report = clean_report()
    assert failed_checks(report) == []
    for part, values in change.items():
        if isinstance(values, dict):
            report[part] = {**report[part], **values}
        else:
            report[part] = values
    assert failed_checks(report) == [failed]
