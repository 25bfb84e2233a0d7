"""Shards for the trainer's tests: tic-tac-toe self-play of a know-nothing evaluator, written and
registered as a worker would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import redis

from azjobs.games import get_game
from azjobs.jobs.configs import selfplay_config
from azjobs.search import play_games
from azjobs.settings import Settings
from azjobs.storage.replay import register_shard
from azjobs.storage.shards import ShardInfo, write_shard

GAME = get_game("tictactoe")


def uniform(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((len(planes), GAME.num_actions), np.float32), np.zeros(len(planes), np.float32)


def add_shard(client: redis.Redis, run_dir: Path, settings: Settings, seed: int = 0, games: int = 48) -> ShardInfo:
    """`games` games of self-play with `settings`' search, as shard `prep-<seed>` of the run in `run_dir`."""
    records = play_games(GAME, selfplay_config(settings), uniform, games, np.random.default_rng(seed))
    info = write_shard(
        run_dir / "replay",
        records,
        game=GAME.name,
        job_id=f"prep-{seed}",
        worker="test",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )
    register_shard(client, run_dir.name, info)
    return info
