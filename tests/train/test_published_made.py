"""Each weights version carries the games and positions the run had made when it was published (the run's
counters in Redis), so a strength curve can be drawn against self-play as well as against training time."""

from __future__ import annotations

from pathlib import Path

import redis
from test_trainer import add_shard, train

from azjobs import keys
from azjobs.eval import records
from azjobs.net import read_metadata
from azjobs.storage.weights import WeightStore, versions_in


def test_each_version_carries_the_games_and_positions_made(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "made"
    info = add_shard(redis_client, run_dir, seed=0)
    redis_client.hincrby(keys.stats(run_dir.name), "games", 7)  # a count the trainer never computes itself
    train(redis_client, run_dir, max_steps=6)
    store = WeightStore(redis_client, run_dir.name, run_dir)
    versions = versions_in(run_dir / "weights")
    assert versions == [1, 2, 3]
    for version in versions:
        meta = read_metadata(store.load(version))
        assert (meta["games_made"], meta["positions_made"]) == (str(info.games + 7), str(info.positions))
    assert records.published(run_dir)[-1]["positions_made"] == info.positions  # what bench strength reads
