"""`azjobs bench oracle`: a run's network against the solved game, for games small enough to solve exactly.

It asks the run's weights (the newest, or the newest published within M minutes of training), through
the same code as `azjobs bestmove`, for a move in every reachable non-terminal position, counts the
game-theoretically optimal ones, then plays every line against every optimal reply, as both sides, and
counts the games lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from azjobs.bench import emit, say
from azjobs.errors import AzjobsError
from azjobs.eval.records import version_at
from azjobs.games.solver import score
from azjobs.players import bestmove

# Games that azjobs/games/solver.py searches completely in seconds (tic-tac-toe: 4,520 positions).
SOLVED_GAMES = ("tictactoe",)


def run(run_dir: Path, sims: int, minutes: float | None = None, device: str = "cpu") -> dict[str, Any]:
    """Score the run's weights against perfect play; prints the result as one JSON line and returns it."""
    version = None
    if minutes is not None:
        found = version_at(run_dir, minutes)
        if found is None:
            raise AzjobsError(f"run {run_dir} has no weights version published within {minutes:g} minutes")
        version = found[0]
    agent = bestmove.load_agent(run_dir, device=device, version=version)
    game = agent.game
    if game.name not in SOLVED_GAMES:
        raise AzjobsError(
            f"run {run_dir} plays {game.name}, which the exact solver cannot solve; it solves "
            f"{', '.join(SOLVED_GAMES)} (for other games: azjobs bench strength)"
        )
    player = agent.with_sims(sims)
    result = score(game, lambda states: [int(a) for a in player.choose(np.stack(states), np.random.default_rng(0))])
    say(
        f"{game.name}, version {agent.version}, {sims} sims: {result.optimal_share:.1%} of {result.positions} "
        f"positions optimal; {result.games_lost} of {result.lines_played} lines lost against perfect play"
    )
    return emit(
        {
            "game": game.name,
            "weights_version": agent.version,
            "within_minutes": minutes,
            "sims": sims,
            "positions": result.positions,
            "optimal": result.optimal,
            "optimal_share": round(result.optimal_share, 4),
            "lines_vs_perfect_play": result.lines_played,
            "games_lost": result.games_lost,
        }
    )
