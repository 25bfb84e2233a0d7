"""WeightStore: every version on disk, the newest few in Redis, versions only going up, Redis loss survived."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from azjobs import keys
from azjobs.errors import AzjobsError
from azjobs.storage.weights import WeightStore

RUN = "run-w"


def blob(version: int) -> bytes:
    return f"weights-{version}-".encode() * (version + 1)


def test_publish_load_latest(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = WeightStore(redis_client, RUN, tmp_path)
    assert store.latest_version() is None and store.latest() is None
    for version in (1, 2):
        store.publish(version, blob(version))
    assert store.latest_version() == 2
    assert store.latest() == (2, blob(2))
    assert store.load(1) == blob(1)
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["v000001.safetensors", "v000002.safetensors"]
    assert (tmp_path / "weights" / "v000002.safetensors").read_bytes() == blob(2)
    with pytest.raises(AzjobsError, match="weights version 7"):
        store.load(7)


def test_publish_announces_new_versions(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = WeightStore(redis_client, RUN, tmp_path)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.weights_channel(RUN))
    pubsub.get_message(timeout=1.0)
    store.publish(3, blob(3))
    store.publish(2, blob(2))  # older than the latest: stored, but not announced
    store.publish(4, blob(4))
    announced = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        announced.append(message["data"])
    pubsub.close()
    assert announced == [b"3", b"4"]


def test_only_the_newest_stay_in_redis(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = WeightStore(redis_client, RUN, tmp_path, keep_in_redis=2)
    for version in range(1, 6):
        store.publish(version, blob(version))
    held = [v for v in range(1, 6) if redis_client.exists(keys.weights(RUN, v))]
    assert held == [4, 5]
    assert [store.load(v) for v in range(1, 6)] == [blob(v) for v in range(1, 6)]  # older ones from disk


def test_versions_only_go_up(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = WeightStore(redis_client, RUN, tmp_path)
    store.publish(5, blob(5))
    store.publish(3, blob(3))
    assert store.latest_version() == 5
    assert store.latest() == (5, blob(5))
    assert store.load(3) == blob(3)
    other = WeightStore(redis_client, RUN, tmp_path)  # a second process sees the same
    assert other.latest_version() == 5


def test_redis_loss_restores_from_disk(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = WeightStore(redis_client, RUN, tmp_path)
    for version in (1, 2, 3):
        store.publish(version, blob(version))
    redis_client.flushall()
    assert store.latest_version() == 3
    assert redis_client.get(keys.weights_latest(RUN)) == b"3"
    assert redis_client.get(keys.weights(RUN, 3)) == blob(3)
    assert store.latest() == (3, blob(3))
    assert store.load(1) == blob(1)
    store.publish(4, blob(4))
    assert store.latest_version() == 4


def test_runs_are_separate(redis_client: redis.Redis, tmp_path: Path) -> None:
    a = WeightStore(redis_client, "a", tmp_path / "a")
    b = WeightStore(redis_client, "b", tmp_path / "b")
    a.publish(1, blob(1))
    assert b.latest_version() is None
    assert a.latest_version() == 1
