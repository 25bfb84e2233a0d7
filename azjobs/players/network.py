"""The trained agent as a player: a weights version of the run (or of another, `net@RUN_DIR`), searching
with `azjobs.search`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from azjobs.errors import AzjobsError
from azjobs.games.base import Game
from azjobs.search import Evaluate, SearchConfig, best_actions
from azjobs.storage.weights import WEIGHTS_DIR, file_name, latest_file

if TYPE_CHECKING:
    from azjobs.storage.weights import WeightStore

CHUNK = 1024  # positions searched together: one forward pass per simulation for all of them

WeightsSource = Callable[[int | None], tuple[int, bytes]]  # version (None: the newest) -> (version, bytes)


def weights_from_run_dir(run_dir: Path) -> WeightsSource:
    """Weights read from the run's folder on the storage root alone (no Redis)."""

    def load(version: int | None) -> tuple[int, bytes]:
        if version is None:
            found = latest_file(run_dir)
            if found is None:
                raise AzjobsError(
                    f"run {run_dir} has no published weights yet: train it first (azjobs run or azjobs train)"
                )
            version, path = found
        else:
            path = Path(run_dir) / WEIGHTS_DIR / file_name(version)
        try:
            return version, path.read_bytes()
        except FileNotFoundError:
            raise AzjobsError(f"run {run_dir} has no weights version {version} (no {path})") from None

    return load


def weights_from_store(store: WeightStore) -> WeightsSource:
    """Weights from the run's store (Redis, else the storage root): what a worker uses."""

    def load(version: int | None) -> tuple[int, bytes]:
        if version is None:
            found = store.latest()
            if found is None:
                raise AzjobsError(f"run {store.run!r} has no published weights yet")
            return found
        return version, store.load(version)

    return load


@dataclass
class NetPlayer:
    """The most visited move of a noise-free search with `sims` simulations (0: the policy's top move)."""

    game: Game
    evaluate: Evaluate
    version: int
    sims: int
    config: SearchConfig = SearchConfig()
    source: str = ""  # another run's name (net@RUN:V); "" for the run's own weights

    @property
    def name(self) -> str:
        return f"net@{self.source}:{self.version}" if self.source else f"net:{self.version}"

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        parts = [
            best_actions(self.game, states[i : i + CHUNK], self.evaluate, self.sims, config=self.config, rng=rng)
            for i in range(0, len(states), CHUNK)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
