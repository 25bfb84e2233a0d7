"""A player from its spec: `make_player` from the pieces a caller holds, `load_player` for a command
from a run's folder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from azjobs.errors import AzjobsError
from azjobs.players.specs import DEFAULT_ARGS, PlayerSpec
from azjobs.search.config import SearchConfig

if TYPE_CHECKING:
    from azjobs.games.base import Game
    from azjobs.players import Player
    from azjobs.players.network import WeightsSource

Locate = Callable[[str], Path]  # a spec's RUN_DIR (net@RUN_DIR) or FILE (agent:FILE) -> the path here


def make_player(
    spec: str | PlayerSpec,
    game: Game,
    *,
    weights: WeightsSource | None = None,
    sims: int = 0,
    search: SearchConfig | None = None,
    device: str = "cpu",
    run_dir: Path | None = None,
    locate: Locate = Path,
    torchscript: bool = True,
) -> Player:
    """The player a spec names. `weights` (those of the run at `run_dir`), `sims`, `search` and `device`
    are for `net` players; `net:best` reads the records of `run_dir`; `net@RUN_DIR` and `agent:FILE`
    find their folder or file with `locate`; `torchscript=False` refuses TorchScript agent files (jobs)."""
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
    if spec.kind == "agent":
        from azjobs.players.exported import agent_player

        assert spec.where is not None  # PlayerSpec.parse: an agent names its file
        return agent_player(str(spec), locate(spec.where), game, spec.arg, torchscript=torchscript)[1]
    source = ""
    if spec.where is not None:
        run_dir = other_run(locate(spec.where), game)
        weights, source = _weights_of(run_dir), Path(spec.where).name
    if weights is None:
        raise ValueError(f"player {spec} needs a run's weights: pass the run's --run-dir")
    if spec.best:
        if run_dir is None:
            raise ValueError(f"player {spec} needs the run's folder (its evaluation records)")
        from azjobs.eval.standing import best_version

        spec = dataclasses.replace(spec, best=False, arg=best_version(run_dir)[0])
    from azjobs.inference.local import LocalEvaluator  # torch: only for network players
    from azjobs.players.network import NetPlayer

    version, data = weights(spec.arg)
    evaluator = LocalEvaluator.from_bytes(game, data, device=device)
    return NetPlayer(game, evaluator.evaluate, version, sims, search or SearchConfig(), source)


def _weights_of(run_dir: Path) -> WeightsSource:
    from azjobs.players.network import weights_from_run_dir

    return weights_from_run_dir(run_dir)


def other_run(run_dir: Path, game: Game | None) -> Path:
    """The folder of another run (net@RUN_DIR), checked: a run, and of `game` when given."""
    from azjobs.run import read_file

    settings = read_file(run_dir)
    if settings is None:
        raise AzjobsError(f"no run at {run_dir} (no settings.toml): net@RUN_DIR names a run's folder")
    if game is not None and settings.game != game.name:
        raise AzjobsError(f"run {run_dir} plays {settings.game}, not {game.name}: pick a run of {game.name}")
    return run_dir


def locator(run_dir: Path | None) -> Locate:
    """Where a command finds a spec's RUN_DIR or FILE: as given (absolute, or from the current folder),
    else beside --run-dir (a sibling run on the same storage root)."""

    def locate(where: str) -> Path:
        path = Path(where).expanduser()
        if path.is_absolute() or path.exists() or run_dir is None:
            return path
        beside = Path(run_dir).parent / path
        return beside if beside.exists() else path

    return locate


def load_player(
    spec: str, *, run_dir: Path | None = None, game: str | None = None, sims: int | None = None, device: str = "cpu"
) -> tuple[Game, Player]:
    """A player for a command: a baseline needs only the game (--game or the run's); a network
    player reads the run's settings and weights from `run_dir` (no Redis), `net@RUN_DIR` those of
    RUN_DIR (searching with `run_dir`'s settings when given), `agent:FILE` its file alone.
    AzjobsError if it can't."""
    from azjobs.games import get_game
    from azjobs.jobs.configs import search_config
    from azjobs.run import read_file

    try:
        parsed = PlayerSpec.parse(spec)
    except ValueError as e:
        raise AzjobsError(str(e)) from None
    locate = locator(run_dir)
    home = run_dir
    if home is None and parsed.kind == "net" and parsed.where is not None:
        home = other_run(locate(parsed.where), None)
    settings = read_file(home) if home is not None else None
    if run_dir is not None and settings is None:
        raise AzjobsError(f"no run at {run_dir} (no settings.toml): pass the --run-dir of a run that has trained")
    if settings is not None and game is not None and game != settings.game:
        raise AzjobsError(f"run {home} plays {settings.game}, not {game}: drop --game or pick another run")
    if parsed.kind == "agent" and game is None and settings is None:
        from azjobs.players.exported import agent_player

        assert parsed.where is not None  # PlayerSpec.parse: an agent names its file
        return agent_player(str(parsed), locate(parsed.where), None, parsed.arg)
    if settings is None and (game is None or parsed.needs_run):
        raise AzjobsError(
            f"player {parsed} needs --run-dir (a trained run)"
            if parsed.needs_run
            else f"player {parsed} needs --game (or a --run-dir whose game it plays)"
        )
    if game:
        game_name = game
    else:
        assert settings is not None  # checked above: without --game, a run's settings name the game
        game_name = settings.game
    try:
        found = get_game(game_name)
    except ValueError as e:
        raise AzjobsError(f"run {home}: {e}" if game is None else str(e)) from None
    if sims is None:
        sims = settings.num_simulations if settings is not None else 0
    search = search_config(settings) if settings is not None else SearchConfig()
    weights = _weights_of(run_dir) if run_dir is not None else None
    try:
        player = make_player(
            parsed, found, weights=weights, sims=sims, search=search, device=device, run_dir=run_dir, locate=locate
        )
    except ValueError as e:
        raise AzjobsError(str(e)) from None
    return found, player
