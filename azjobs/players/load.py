"""A player from its spec: `make_player` from the pieces a caller holds, `load_player` for a command
from a run's folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from azjobs.errors import AzjobsError
from azjobs.players.specs import DEFAULT_ARGS, PlayerSpec
from azjobs.search.config import SearchConfig

if TYPE_CHECKING:
    from azjobs.games.base import Game
    from azjobs.players import Player
    from azjobs.players.network import WeightsSource


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

    version, data = weights(spec.arg)
    evaluator = LocalEvaluator.from_bytes(game, data, device=device)
    return NetPlayer(game, evaluator.evaluate, version, sims, search or SearchConfig())


def load_player(
    spec: str, *, run_dir: Path | None = None, game: str | None = None, sims: int | None = None, device: str = "cpu"
) -> tuple[Game, Player]:
    """A player for a command: a baseline needs only the game (--game or the run's); a network
    player reads the run's settings and weights from `run_dir` (no Redis). AzjobsError if it can't."""
    from azjobs.games import get_game
    from azjobs.jobs.configs import search_config
    from azjobs.players.network import weights_from_run_dir
    from azjobs.run import read_file

    try:
        parsed = PlayerSpec.parse(spec)
    except ValueError as e:
        raise AzjobsError(str(e)) from None
    settings = read_file(run_dir) if run_dir is not None else None
    if run_dir is not None and settings is None:
        raise AzjobsError(f"no run at {run_dir} (no settings.toml): pass the --run-dir of a run that has trained")
    if settings is None and (game is None or not parsed.is_baseline):
        raise AzjobsError(
            f"player {parsed} needs --run-dir (a trained run)"
            if not parsed.is_baseline
            else f"player {parsed} needs --game (or a --run-dir whose game it plays)"
        )
    if settings is not None and game is not None and game != settings.game:
        raise AzjobsError(f"run {run_dir} plays {settings.game}, not {game}: drop --game or pick another run")
    if game:
        game_name = game
    else:
        assert settings is not None  # checked above: without --game, a run's settings name the game
        game_name = settings.game
    try:
        found = get_game(game_name)
    except ValueError as e:
        raise AzjobsError(f"run {run_dir}: {e}" if game is None else str(e)) from None
    if sims is None:
        sims = settings.num_simulations if settings is not None else 0
    search = search_config(settings) if settings is not None else SearchConfig()
    weights = weights_from_run_dir(run_dir) if run_dir is not None else None
    return found, make_player(parsed, found, weights=weights, sims=sims, search=search, device=device)
