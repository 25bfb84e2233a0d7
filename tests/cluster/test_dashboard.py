"""rq-dashboard through `azjobs dashboard`: queues, JSON jobs and busy workers all show; nothing planted in
Redis is unpickled, write actions are off unless allowed, and beyond loopback it wants a password."""

from __future__ import annotations

import pickle
import zlib
from base64 import b64encode
from pathlib import Path

from click.testing import CliRunner
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FinishedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cli import main
from azjobs.cluster.dashboard import is_loopback, make_app


def test_dashboard_shows_queue_jobs_and_a_busy_worker(redis_client, redis_url: str) -> None:
    queue = Queue(keys.selfplay_queue("dash"), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue_call("azjobs.jobs.selfplay.selfplay", args=("dash", 7), description="selfplay dash #7")
    worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, name="w1")
    worker.register_birth()
    worker.prepare_execution(job)  # busy with the job, as while it plays its games
    client = make_app(redis_url).test_client()

    queues = client.get("/0/data/queues.json").get_json()["queues"]
    assert [(q["name"], q["count"]) for q in queues] == [(keys.selfplay_queue("dash"), 1)]
    workers = client.get("/0/data/workers.json")
    assert workers.status_code == 200, workers.data[-500:]
    (shown,) = workers.get_json()["workers"]
    assert shown["name"] == "w1"
    assert shown["current_job"]["call_string"] == "azjobs.jobs.selfplay.selfplay('dash', 7)"
    listed = client.get(f"/0/data/jobs/{keys.selfplay_queue('dash')}/queued/8/asc/1.json").get_json()
    assert [j["id"] for j in listed["jobs"]] == [job.id]
    worker.register_death()


class Planted:
    """A pickle that, once loaded, creates the file it names: proof that something unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def plant(redis_client, tmp_path: Path) -> tuple[str, str, Path]:
    """A finished job whose result, meta and Result entry are pickles, and a queued job whose data is one."""
    proof = tmp_path / "unpickled"
    queue = Queue(keys.selfplay_queue("dash"), connection=redis_client, serializer=JSONSerializer)
    done = queue.enqueue_call("azjobs.jobs.selfplay.selfplay", args=("dash", 1))
    payload = pickle.dumps(Planted(proof))
    redis_client.hset(Job.key_for(done.id), mapping={"result": payload, "meta": payload, "status": "finished"})
    redis_client.xadd(
        Result.get_key(done.id), {"type": 1, "return_value": b64encode(payload), "created_at": "1700000000"}
    )
    FinishedJobRegistry(queue.name, connection=redis_client, serializer=JSONSerializer).add(done, -1)
    queued = queue.enqueue_call("azjobs.jobs.selfplay.selfplay", args=("dash", 2))
    redis_client.hset(Job.key_for(queued.id), "data", zlib.compress(pickle.dumps(("x", None, (Planted(proof),), {}))))
    return done.id, queued.id, proof


def test_dashboard_never_unpickles_what_it_finds(redis_client, redis_url: str, tmp_path: Path) -> None:
    done, queued, proof = plant(redis_client, tmp_path)
    app = make_app(redis_url)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a page that cannot read a planted field answers 500
    client = app.test_client()
    name = keys.selfplay_queue("dash")
    pages = [
        f"/0/view/job/{done}",
        f"/0/data/job/{done}.json",
        f"/0/view/job/{queued}",
        f"/0/data/job/{queued}.json",
        f"/0/data/jobs/{name}/queued/8/asc/1.json",
        f"/0/data/jobs/{name}/finished/8/asc/1.json",
        "/0/data/queues.json",
        "/0/data/workers.json",
        f"/0/view/jobs/{name}/finished/8/asc/1",
    ]
    answers = {page: client.get(page).status_code for page in pages}
    assert not proof.exists(), "the dashboard unpickled a planted payload"
    assert answers["/0/data/queues.json"] == answers["/0/data/workers.json"] == 200
    assert answers[f"/0/view/job/{done}"] == 200


def test_write_actions_are_off_unless_allowed(redis_client, redis_url: str) -> None:
    queue = Queue(keys.selfplay_queue("dash"), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue_call("azjobs.jobs.selfplay.selfplay", args=("dash", 3))
    client = make_app(redis_url).test_client()
    refused = [
        client.post(f"/job/{job.id}/delete"),
        client.post(f"/job/{job.id}/requeue"),
        client.get(f"/requeue/{queue.name}"),
        client.post(f"/requeue/{queue.name}"),
        client.post(f"/queue/{queue.name}/queued/empty"),
        client.post(f"/queue/{queue.name}/compact"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert b"--allow-actions" in refused[0].data
    assert queue.job_ids == [job.id] and Job.exists(job.id, connection=redis_client)

    allowed = make_app(redis_url, allow_actions=True).test_client()
    assert allowed.post(f"/job/{job.id}/delete").get_json() == {"status": "OK"}
    assert not Job.exists(job.id, connection=redis_client)


def test_a_password_guards_every_page(redis_url: str) -> None:
    client = make_app(redis_url, password="dash-pw").test_client()
    assert client.get("/0/data/queues.json").status_code == 401
    wrong = {"Authorization": "Basic " + b64encode(b"azjobs:nope").decode()}
    assert client.get("/0/data/queues.json", headers=wrong).status_code == 401
    right = {"Authorization": "Basic " + b64encode(b"azjobs:dash-pw").decode()}
    assert client.get("/0/data/queues.json", headers=right).status_code == 200
    assert client.post("/queue/q/queued/empty", headers=right).status_code == 403  # still read-only


def test_binding_beyond_loopback_needs_a_password(redis_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AZJOBS_DASHBOARD_PASSWORD", raising=False)
    done = CliRunner().invoke(main, ["dashboard", "--redis-url", redis_url, "--bind", "0.0.0.0"])
    assert done.exit_code != 0
    assert "refusing to serve the dashboard on 0.0.0.0 without a password" in done.output
    assert "--password-file" in done.output and "Traceback" not in done.output
    empty = tmp_path / "empty"
    empty.write_text("\n")
    done = CliRunner().invoke(
        main, ["dashboard", "--redis-url", redis_url, "--bind", "0.0.0.0", "--password-file", str(empty)]
    )
    assert done.exit_code != 0 and "is empty" in done.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("head.lan")
