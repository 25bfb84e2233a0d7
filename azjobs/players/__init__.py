"""Players: anything that picks a move in many positions at once, named by a short spec.

Specs (`azjobs.players.specs`): `random`, `oneply`, `alphabeta[:DEPTH]`, `mcts[:SIMULATIONS]`
(baselines, no network), `net[:VERSION]` (a weights version of the run, the newest without
VERSION, searching with the simulations the caller gives), `net:best` (the run's best version),
`net@RUN_DIR[:VERSION]` (another run's) and `agent:FILE[:sims=N]` (an exported agent file,
`azjobs.players.exported`; written by `azjobs.players.export`). A player's `name` is its spec with
every number filled in; ratings and evaluation records use it. This package imports nothing heavy (the
settings check specs with `azjobs.players.specs`); the players and `make_player`/`load_player`
(`azjobs.players.load`) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from azjobs.players.specs import SPEC_HELP, PlayerSpec

if TYPE_CHECKING:
    import numpy as np


class Player(Protocol):
    @property
    def name(self) -> str:
        """The player's spec with every number filled in (ratings and records use it)."""
        ...

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The move for each of `states  # [B, S]` (none finished).  # [B] int64"""
        ...


_LAZY = {
    "AlphaBetaPlayer": "alphabeta",
    "OnePlyPlayer": "baselines",
    "RandomPlayer": "baselines",
    "RolloutMCTSPlayer": "rollout",
    "NetPlayer": "network",
    "AgentPlayer": "exported",
    "WeightsSource": "network",
    "weights_from_run_dir": "network",
    "weights_from_store": "network",
    "make_player": "load",
    "load_player": "load",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"azjobs.players.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Player", "PlayerSpec", "SPEC_HELP", *_LAZY]
