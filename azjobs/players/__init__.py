"""Players: anything that picks a move in many positions at once, named by a short spec.

Specs: `random`, `oneply`, `alphabeta[:DEPTH]`, `mcts[:SIMULATIONS]` (baselines, no network),
and `net[:VERSION]` (a weights version of the run, the newest without VERSION, searching with
the simulations the caller gives). A player's `name` is its spec with every number filled in;
ratings and evaluation records use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from azjobs.games.base import Game
from azjobs.players.alphabeta import AlphaBetaPlayer
from azjobs.players.baselines import OnePlyPlayer, RandomPlayer
from azjobs.players.network import NetPlayer, WeightsSource, weights_from_run_dir, weights_from_store
from azjobs.players.rollout import RolloutMCTSPlayer
from azjobs.search import SearchConfig


class Player(Protocol):
    name: str

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The move for each of `states  # [B, S]` (none finished).  # [B] int64"""
        ...


DEFAULT_ARGS = {"alphabeta": 4, "mcts": 500}  # depth, simulations
KINDS = ("random", "oneply", "alphabeta", "mcts", "net")
SPEC_HELP = "random, oneply, alphabeta[:DEPTH], mcts[:SIMULATIONS] or net[:VERSION]"


@dataclass(frozen=True)
class PlayerSpec:
    kind: str
    arg: int | None = None  # depth, simulations or weights version (None: the default / the newest)

    @classmethod
    def parse(cls, text: str) -> PlayerSpec:
        """ValueError naming the accepted forms if `text` is not a spec."""
        kind, _, arg = text.strip().partition(":")
        if kind not in KINDS or (arg and (not arg.isdigit() or kind in ("random", "oneply"))):
            raise ValueError(f"unknown player {text!r}; use {SPEC_HELP}")
        number = int(arg) if arg else DEFAULT_ARGS.get(kind)
        if number is not None and number < 1:
            raise ValueError(f"player {text!r}: the number must be at least 1")
        return cls(kind, number)

    @property
    def is_baseline(self) -> bool:
        return self.kind != "net"

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def make_player(
    spec: str | PlayerSpec,
    game: Game,
    *,
    weights: WeightsSource | None = None,
    sims: int = 0,
    search: SearchConfig = SearchConfig(),
    device: str = "cpu",
) -> Player:
    """The player a spec names; `weights`, `sims`, `search` and `device` are for `net` players."""
    spec = PlayerSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.kind == "random":
        return RandomPlayer(game)
    if spec.kind == "oneply":
        return OnePlyPlayer(game)
    if spec.kind == "alphabeta":
        return AlphaBetaPlayer(game, depth=int(spec.arg or DEFAULT_ARGS["alphabeta"]))
    if spec.kind == "mcts":
        return RolloutMCTSPlayer(game, simulations=int(spec.arg or DEFAULT_ARGS["mcts"]))
    if weights is None:
        raise ValueError(f"player {spec} needs a run's weights: pass the run's --run-dir")
    from azjobs.inference.local import LocalEvaluator  # torch: only for network players

    version, data = weights(spec.arg)
    evaluator = LocalEvaluator.from_bytes(game, data, device=device)
    return NetPlayer(game, evaluator.evaluate, version, sims, search)


__all__ = [
    "AlphaBetaPlayer",
    "NetPlayer",
    "OnePlyPlayer",
    "Player",
    "PlayerSpec",
    "RandomPlayer",
    "RolloutMCTSPlayer",
    "SPEC_HELP",
    "WeightsSource",
    "make_player",
    "weights_from_run_dir",
    "weights_from_store",
]
