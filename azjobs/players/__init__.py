"""Players: anything that picks a move in many positions at once, named by a short spec.

Specs: `random`, `oneply`, `alphabeta[:DEPTH]`, `mcts[:SIMULATIONS]` (baselines, no network),
and `net[:VERSION]` (a weights version of the run, the newest without VERSION, searching with
the simulations the caller gives). A player's `name` is its spec with every number filled in;
ratings and evaluation records use it. This module imports nothing heavy (settings validate
specs with it); the players themselves load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from azjobs.errors import AzjobsError

if TYPE_CHECKING:
    from azjobs.games.base import Game
    from azjobs.players.network import WeightsSource
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
    search: SearchConfig | None = None,
    device: str = "cpu",
) -> Player:
    """The player a spec names; `weights`, `sims`, `search` and `device` are for `net` players."""
    from azjobs.players.alphabeta import AlphaBetaPlayer
    from azjobs.players.baselines import OnePlyPlayer, RandomPlayer
    from azjobs.players.rollout import RolloutMCTSPlayer

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
    from azjobs.players.network import NetPlayer
    from azjobs.search import SearchConfig

    version, data = weights(spec.arg)
    evaluator = LocalEvaluator.from_bytes(game, data, device=device)
    return NetPlayer(game, evaluator.evaluate, version, sims, search or SearchConfig())


def load_player(
    spec: str, *, run_dir: Path | None = None, game: str | None = None, sims: int | None = None, device: str = "cpu"
) -> tuple[Game, Player]:
    """A player for a command: a baseline needs only the game (--game or the run's); a network
    player reads the run's settings and weights from `run_dir` (no Redis). AzjobsError if it can't."""
    from azjobs import settings as run_settings
    from azjobs.games import get_game
    from azjobs.players.network import weights_from_run_dir
    from azjobs.search import SearchConfig

    try:
        parsed = PlayerSpec.parse(spec)
    except ValueError as e:
        raise AzjobsError(str(e)) from None
    settings = run_settings.read_file(run_dir) if run_dir is not None else None
    if run_dir is not None and settings is None:
        raise AzjobsError(f"no run at {run_dir} (no settings.toml): pass the --run-dir of a run that has trained")
    if settings is None and (game is None or not parsed.is_baseline):
        raise AzjobsError(f"player {parsed} needs --run-dir (a trained run)" if not parsed.is_baseline
                          else f"player {parsed} needs --game (or a --run-dir whose game it plays)")
    if settings is not None and game is not None and game != settings.game:
        raise AzjobsError(f"run {run_dir} plays {settings.game}, not {game}: drop --game or pick another run")
    try:
        found = get_game(game or settings.game)  # type: ignore[union-attr]
    except ValueError as e:
        raise AzjobsError(f"run {run_dir}: {e}" if game is None else str(e)) from None
    if sims is None:
        sims = settings.num_simulations if settings is not None else 0
    search = SearchConfig.from_settings(settings) if settings is not None else SearchConfig()
    weights = weights_from_run_dir(run_dir) if run_dir is not None else None
    return found, make_player(parsed, found, weights=weights, sims=sims, search=search, device=device)


_LAZY = {
    "AlphaBetaPlayer": "alphabeta", "OnePlyPlayer": "baselines", "RandomPlayer": "baselines",
    "RolloutMCTSPlayer": "rollout", "NetPlayer": "network", "WeightsSource": "network",
    "weights_from_run_dir": "network", "weights_from_store": "network",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"azjobs.players.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Player", "PlayerSpec", "SPEC_HELP", "load_player", "make_player", *_LAZY]
