"""Play a run's newest weights against a uniformly random player, any game; prints one JSON object.

    python scripts/vs_random.py --run-dir runs/othello [--games 50] [--sims 50]

All games are played at once; the agent moves first in the even-numbered ones. Its moves come
from the same search as `azjobs bestmove` (no noise); `--sims 0` plays the network's policy alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from azjobs import bestmove
from azjobs.errors import AzjobsError
from azjobs.search.mcts import SearchConfig, best_actions


def play(agent: bestmove.Agent, games: int, sims: int, seed: int) -> np.ndarray:
    """Each game's result for the agent: +1 win, 0 draw, -1 loss.  # [games] float32"""
    game, rng = agent.game, np.random.default_rng(seed)
    config = SearchConfig.from_settings(agent.settings)
    agent_side = np.arange(games) % 2  # [G] 0: the agent moves first
    states = np.repeat(game.initial_state()[None], games, axis=0)  # [G, S]
    while True:
        live = np.flatnonzero(np.isnan(game.terminal_value(states)))
        if not len(live):
            break
        now = states[live]
        mask = game.legal_mask(now)
        actions = np.where(mask, rng.random(mask.shape), -1.0).argmax(axis=1)  # the random player's moves
        mine = game.to_play(now) == agent_side[live]
        if mine.any():
            actions[mine] = best_actions(game, now[mine], agent.evaluator.evaluate, sims, config=config, rng=rng)
        states[live] = game.play(now, actions)
    value = game.terminal_value(states)  # for the player to move at the end
    mover_is_agent = game.to_play(states) == agent_side
    return np.where(mover_is_agent, value, -value)


@click.command()
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--games", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--sims", type=click.IntRange(min=0), default=None,
              help="Simulations per move (default: the run's num_simulations).")
@click.option("--seed", type=int, default=0, show_default=True)
def main(run_dir: Path, games: int, sims: int | None, seed: int) -> None:
    try:
        agent = bestmove.load_agent(run_dir)
    except AzjobsError as e:
        raise click.ClickException(str(e)) from None
    sims = agent.settings.num_simulations if sims is None else sims
    results = play(agent, games, sims, seed)
    click.echo(json.dumps({
        "game": agent.game.name,
        "weights_version": agent.version,
        "sims": sims,
        "games": games,
        "wins": int((results > 0).sum()),
        "draws": int((results == 0).sum()),
        "losses": int((results < 0).sum()),
        "win_share": round(float((results > 0).mean()), 4),
    }))


if __name__ == "__main__":
    main()
