"""Score a tic-tac-toe run against the solved game; prints one JSON object.

    python scripts/tictactoe_oracle.py --run-dir runs/tictactoe [--sims 50]

It asks the run's newest weights (through the same code as `azjobs bestmove`) for a move
in every reachable non-terminal position (4,520), counts the game-theoretically optimal
ones, then plays the agent against every optimal reply as both sides and counts losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from azjobs import bestmove
from azjobs.games.solver import score


@click.command()
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--sims", type=click.IntRange(min=0), default=50, show_default=True)
def main(run_dir: Path, sims: int) -> None:
    agent = bestmove.load_agent(run_dir)
    game = agent.game
    if game.name != "tictactoe":
        raise click.ClickException(f"run {run_dir} plays {game.name}; this check is for tictactoe")
    result = score(game, lambda states: [game.parse_action(m) for m in bestmove.choose(agent, states, sims)])
    click.echo(json.dumps({
        "weights_version": agent.version,
        "sims": sims,
        "positions": result.positions,
        "optimal": result.optimal,
        "optimal_share": round(result.optimal_share, 4),
        "lines_vs_perfect_play": result.lines_played,
        "games_lost": result.games_lost,
    }))


if __name__ == "__main__":
    main()
