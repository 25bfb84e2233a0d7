"""Synthetic game records for the storage tests."""

from __future__ import annotations

import numpy as np

from azjobs.game_records import GameRecords
from azjobs.games import get_game

GAME = get_game("tictactoe")


def make_records(game_lengths: list[int], start_id: int = 0) -> GameRecords:
    """Synthetic games whose positions carry their id in the first two plane bytes."""
    n = sum(game_lengths)
    ids = np.arange(start_id, start_id + n)
    planes = np.zeros((n, *GAME.planes_shape), dtype=np.uint8)
    planes[:, 0, 0, 0], planes[:, 0, 0, 1] = ids % 256, ids // 256
    policy = np.full((n, GAME.num_actions), 0.5 / (GAME.num_actions - 1), dtype=np.float32)
    policy[np.arange(n), ids % GAME.num_actions] = 0.5
    results = np.array([(g % 3) - 1 for g in range(len(game_lengths))], dtype=np.int8)
    return GameRecords(
        planes=planes,
        policy=policy,
        value=((ids % 3) - 1).astype(np.float32),
        weights_version=(ids // 10).astype(np.int32),
        results=results,
        game_lengths=np.array(game_lengths, dtype=np.int32),
    )
