"""Score a tic-tac-toe run against the solved game; prints one JSON object.

    python scripts/tictactoe_oracle.py --run-dir runs/tictactoe [--sims 50] [--minutes M]

It asks the run's newest weights (with --minutes, the newest version published within M
minutes of the trainer's wall time), through the same code as `azjobs bestmove`, for a move in
every reachable non-terminal position (4,520), counts the game-theoretically optimal ones, then
plays the agent against every optimal reply as both sides and counts losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from azjobs.eval.records import version_at
from azjobs.games.solver import score
from azjobs.players import bestmove


@click.command()
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--sims", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--minutes", type=click.FloatRange(min=0), default=None,
              help="Score the newest version published within this many minutes of training.")
def main(run_dir: Path, sims: int, minutes: float | None) -> None:
    version = None
    if minutes is not None:
        found = version_at(run_dir, minutes)
        if found is None:
            raise click.ClickException(f"run {run_dir} has no weights version published within {minutes} minutes")
        version = found[0]
    agent = bestmove.load_agent(run_dir, version=version)
    game = agent.game
    if game.name != "tictactoe":
        raise click.ClickException(f"run {run_dir} plays {game.name}; this check is for tictactoe")
    player = agent.with_sims(sims)
    result = score(game, lambda states: [int(a) for a in player.choose(np.stack(states), np.random.default_rng(0))])
    click.echo(json.dumps({
        "weights_version": agent.version,
        "within_minutes": minutes,
        "sims": sims,
        "positions": result.positions,
        "optimal": result.optimal,
        "optimal_share": round(result.optimal_share, 4),
        "lines_vs_perfect_play": result.lines_played,
        "games_lost": result.games_lost,
    }))


if __name__ == "__main__":
    main()
