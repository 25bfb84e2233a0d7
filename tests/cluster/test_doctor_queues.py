"""`azjobs doctor`'s queue check: queued jobs that no worker takes fail, unless the workers are busy."""

from __future__ import annotations

from pathlib import Path

from azjobs.cluster import doctor
from azjobs.cluster.status import Snapshot
from azjobs.run import Run
from azjobs.settings import Settings

WORKER = {"role": "worker", "id": "w1", "host": "cpu-box", "alive": "True"}


def snapshot(queues: dict[str, dict[str, int]]) -> Snapshot:
    return Snapshot(
        run="r",
        time=0.0,
        stats={},
        trainer={},
        weights_version=1,
        queues=queues,
        processes=[WORKER],
        pending_requests=0,
    )


def counts(queued: int = 0, running: int = 0, finished: int = 0) -> dict[str, int]:
    return {"queued": queued, "running": running, "finished": finished, "failed": 0}


def verdicts(first: Snapshot, last: Snapshot) -> list[doctor.Verdict]:
    return [v for v in doctor._queues(Run("r", Path("."), None), Settings(), first, last) if v.check == "queues"]


def test_queued_jobs_that_nobody_takes_fail() -> None:
    still = snapshot({"azjobs:r:selfplay": counts(queued=4), "azjobs:r:eval": counts()})
    found = verdicts(still, still)
    assert [v.level for v in found] == [doctor.FAIL] and "4 selfplay jobs queued and none taken" in found[0].found


def test_workers_busy_with_evaluation_leave_selfplay_waiting_without_a_fault() -> None:
    first = snapshot({"azjobs:r:selfplay": counts(queued=4), "azjobs:r:eval": counts(queued=3, running=1)})
    last = snapshot({"azjobs:r:selfplay": counts(queued=4), "azjobs:r:eval": counts(queued=2, running=1)})
    assert doctor.FAIL not in {v.level for v in verdicts(first, last)}
