"""rq-dashboard through `azjobs dashboard`: queues, JSON jobs and busy workers all show."""

from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.dashboard import make_app


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
