"""Creating a run is atomic: of two creators one wins, and the settings file and Redis agree on it."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from azjobs import keys
from azjobs.cluster import embedded
from azjobs.run import publish, read_file
from azjobs.settings import Settings
from azjobs.storage import marker

A = Settings(game="tictactoe", net_blocks=1, net_channels=8, seed=1)
B = Settings(game="tictactoe", net_blocks=1, net_channels=16, seed=2)


def in_redis(client: redis.Redis, run: str) -> Settings:
    return Settings.from_json(client.get(keys.settings(run)))


def test_a_creator_that_comes_between_the_other_ones_redis_write_and_its_file(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    run_dir = tmp_path / "race"
    redis_client.set(keys.settings("race"), A.to_json(), nx=True)  # creator A got as far as Redis
    assert publish(redis_client, "race", run_dir, B) == A  # creator B joins what won
    assert read_file(run_dir) == A == in_redis(redis_client, "race")
    assert publish(redis_client, "race", run_dir, A) == A  # and A finishes


def test_two_creators_with_two_redis_servers_on_one_folder(redis_client: redis.Redis, tmp_path: Path) -> None:
    """Two `azjobs run` on one folder: each has its own Redis, the folder is shared."""
    run_dir = tmp_path / "twice"
    other = embedded.start()
    try:
        other_client = redis.Redis.from_url(other.url)
        other_client.set(keys.settings("twice"), B.to_json(), nx=True)  # B's Redis took B's settings
        assert publish(redis_client, "twice", run_dir, A) == A  # A's file landed first
        assert publish(other_client, "twice", run_dir, B) == A
        assert in_redis(other_client, "twice") == A == in_redis(redis_client, "twice") == read_file(run_dir)
        other_client.close()
    finally:
        other.stop()


def test_creators_at_once_agree(redis_client: redis.Redis, tmp_path: Path) -> None:
    for round_ in range(10):
        run = f"r{round_}"
        run_dir = tmp_path / run
        start = threading.Barrier(2)
        got: dict[str, Settings] = {}

        def create(name: str, settings: Settings) -> None:
            start.wait()
            got[name] = publish(redis_client, run, run_dir, settings)

        threads = [threading.Thread(target=create, args=(n, s)) for n, s in (("a", A), ("b", B))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got["a"] == got["b"] == read_file(run_dir) == in_redis(redis_client, run)
        assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_creating_a_run_gives_it_its_marker(redis_client: redis.Redis, tmp_path: Path) -> None:
    publish(redis_client, "m", tmp_path / "m", A)
    assert marker.check(redis_client, "m", tmp_path / "m") == "ok"
    assert redis_client.get(keys.marker("m")).decode() == marker.read(tmp_path / "m")
