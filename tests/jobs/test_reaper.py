"""Whether a worker is alive is decided on Redis' clock: a writer whose clock is off still beats."""

from __future__ import annotations

import time

import pytest
import redis

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.jobs import reaper

RUN = "rp"


@pytest.mark.parametrize("skew_s", [-30.0, -15.0, 15.0, 30.0])
def test_a_worker_with_a_skewed_clock_is_alive(redis_client: redis.Redis, skew_s: float) -> None:
    name = f"{RUN}.skewed-host-1"
    heartbeat.beat(redis_client, RUN, "worker", name, clock=lambda: time.time() + skew_s)
    assert reaper.worker_alive(redis_client, RUN, name)
    (info,) = heartbeat.read_all(redis_client, RUN)
    assert info["alive"] == "True" and float(info["time"]) == pytest.approx(time.time() + skew_s, abs=5)


def test_a_silent_worker_is_dead_once_its_alive_key_expires(redis_client: redis.Redis) -> None:
    name = f"{RUN}.gone-2"
    heartbeat.beat(redis_client, RUN, "worker", name)
    ttl_ms = redis_client.pttl(keys.alive(RUN, "worker", name))
    assert 0 < ttl_ms <= heartbeat.DEAD_AFTER_S * 1000
    redis_client.pexpire(keys.alive(RUN, "worker", name), 1)  # as DEAD_AFTER_S of silence would, by Redis' clock
    deadline = time.monotonic() + 5
    while redis_client.exists(keys.alive(RUN, "worker", name)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not reaper.worker_alive(redis_client, RUN, name)
    (info,) = heartbeat.read_all(redis_client, RUN)
    assert info["alive"] == "False"


def test_a_worker_without_azjobs_heartbeats_is_judged_by_rq(redis_client: redis.Redis) -> None:
    assert not reaper.worker_alive(redis_client, RUN, "plain-rq-worker")
    redis_client.set("rq:worker:plain-rq-worker", "x", ex=60)
    assert reaper.worker_alive(redis_client, RUN, "plain-rq-worker")
