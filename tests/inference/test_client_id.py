"""Client ids fit the wire format's limit whatever the host is called, through the real job path."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import redis
import torch
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.games import get_game
from azjobs.inference import client as inference_client
from azjobs.inference import server
from azjobs.inference.client import make_client_id
from azjobs.inference.runner import RunnerOptions
from azjobs.jobs import context, worker
from azjobs.net import build_model, to_bytes
from azjobs.run import Run, publish
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.wire import MAX_CLIENT_ID

LONG_HOST = ".".join(["node-" + "a" * 57] * 4)[:255]  # a 255-character fully qualified name


@pytest.mark.parametrize("host", ["gpu1", LONG_HOST, "pod-" + "x" * 80, "hôte avec espaces", ""])
def test_ids_fit_and_stay_readable(host: str) -> None:
    ids = {make_client_id(host, pid=4_194_304) for _ in range(20)}
    assert len(ids) == 20  # the random part keeps them apart
    for cid in ids:
        assert len(cid.encode()) <= MAX_CLIENT_ID and cid.isascii() and all(0x21 <= ord(c) <= 0x7E for c in cid)
        assert cid.endswith(f"-4194304-{cid[-8:]}")
    if host.isascii() and host and len(host) < 40:
        assert all(cid.startswith(f"{host}-") for cid in ids)
    if len(host) > MAX_CLIENT_ID:
        assert all(cid.startswith(host[:30]) and "~" in cid for cid in ids)
        other = make_client_id(host[:-1] + "z", pid=1)  # same head, another host: another digest
        assert other.split("-")[-3] != make_client_id(host, pid=1).split("-")[-3]


def test_a_selfplay_job_on_a_host_with_a_long_name(
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keep_signal_handlers: None,
) -> None:
    monkeypatch.setattr(inference_client.socket, "gethostname", lambda: LONG_HOST)
    assert socket.gethostname() == LONG_HOST
    settings = Settings(
        game="tictactoe",
        net_blocks=1,
        net_channels=8,
        num_simulations=4,
        games_per_job=2,
        games_in_flight=2,
        temperature_moves=2,
        inference_batch_size=2,
        inference_wait_ms=1.0,
    )
    run_dir = tmp_path / "longhost"
    run = run_dir.name
    publish(redis_client, run, run_dir, settings)
    torch.manual_seed(1)
    game = get_game("tictactoe")
    WeightStore(redis_client, run, run_dir).publish(
        1, to_bytes(build_model(game, settings), {"version": 1, "game": game.name})
    )
    queue = Queue(keys.selfplay_queue(run), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("azjobs.jobs.selfplay.selfplay", run, 3)
    stop = threading.Event()
    serving = threading.Thread(
        target=server.run,
        args=(settings, Run(run, run_dir, redis.Redis.from_url(redis_url))),
        kwargs={
            "device": "cpu",
            "options": RunnerOptions(precision="fp32", channels_last="off"),
            "stop": stop,
            "log": lambda line: None,
            "name": "srv",
        },
    )
    serving.start()
    try:
        worker.run(
            settings,
            Run(run, run_dir, redis_client),
            evaluator="remote",
            name="w-long",
            burst=True,
            say=lambda line: None,
        )
    finally:
        stop.set()
        serving.join(timeout=10)
        context.install(None)  # type: ignore[arg-type]
    fetched = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
    assert fetched.get_status() == "finished", fetched.latest_result()
    assert fetched.return_value()["games"] == 2
