"""Fixtures of the benchmarks' tests: a hand-made run folder (settings, and weights versions carrying the
training seconds, and optionally the positions and games made, that a real run's metadata carries)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from azjobs.games import get_game
from azjobs.net import build_model, to_bytes
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic


@pytest.fixture
def write_run() -> Callable[..., Settings]:
    return _write_run


def _write_run(
    run_dir: Path,
    train_seconds: dict[int, float],
    game: str = "tictactoe",
    positions_made: dict[int, int] | None = None,
) -> Settings:
    """A run of `game` with a tiny network, one weights version per entry (version -> seconds of training);
    with `positions_made` (version -> positions), its versions also carry those and a tenth as many games,
    as the trainer's metadata does since 2026-12-02."""
    settings = Settings(game=game, net_blocks=1, net_channels=8, num_simulations=4)
    write_file(run_dir, settings)
    torch.manual_seed(0)
    for version, seconds in train_seconds.items():
        model = build_model(get_game(game), settings)
        meta = {"version": version, "step": 50 * (version - 1), "train_seconds": seconds}
        if positions_made is not None:
            meta.update(positions_made=positions_made[version], games_made=positions_made[version] // 10)
        write_atomic(run_dir / WEIGHTS_DIR / file_name(version), to_bytes(model, meta))
    return settings
