"""`azjobs bench strength` and `bench match`: how well a player plays, here, without Redis."""

from __future__ import annotations

import json

import click

from azjobs.cli.bench import bench_group
from azjobs.cli.context import Session, pass_session, say, set_threads
from azjobs.cli.options import device_option, game_option, player_option, run_dir_option, sims_option, threads_option


@bench_group.command("strength")
@run_dir_option(required=False)
@click.option("--positions", "positions_file", envvar="AZJOBS_BENCH_STRENGTH_POSITIONS", required=True, metavar="NAME|FILE",
              help="Labelled positions: a bundled set (connect4: 1,302 solved Connect Four positions) or a "
                   "JSON-lines file (the format: docs/evaluation.md).")
@sims_option()
@player_option
@game_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the players' random tie-breaks.")
@device_option(default="cpu", help="torch device of a network player.")
@click.option("--record", is_flag=True,
              help="Also save the result under <run_dir>/evals/, so that `azjobs plot` draws it (net players).")
@threads_option()
@pass_session
def bench_strength_cmd(session: Session, positions_file: str, sims: int | None, player: str, game: str | None,
                       seed: int, device: str, record: bool, threads: int | None) -> None:
    """Share of labelled positions where the player picks an optimal move.

    Weakly correct: the move keeps the best outcome (win, draw, loss); strongly correct: it has the
    best score. Overall and by moves played (<=10, 11-20, 21+); the last line is JSON.
    """
    from azjobs.eval import strength

    set_threads(threads)
    result = strength.bench(positions_file, player, run_dir=session.run_dir, game=game, sims=sims, seed=seed,
                            device=device, record=record)
    for line in strength.describe(result):
        click.echo(line)
    click.echo(json.dumps(result.to_dict()))


@bench_group.command("match")
@click.argument("player_a", default="net")
@click.argument("player_b", default="random")
@run_dir_option(required=False)
@game_option
@click.option("--games", type=click.IntRange(min=2), default=50, show_default=True,
              help="Games to play (rounded up to even): each random opening once with each colour.")
@sims_option(help="Simulations per move of network players (default: the run's num_simulations; 0: policy alone).")
@click.option("--opening-moves", type=click.IntRange(min=0), default=2, show_default=True,
              help="Random moves that open each pair of games.")
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option()
@pass_session
def bench_match_cmd(session: Session, player_a: str, player_b: str, game: str | None, games: int,
                    sims: int | None, opening_moves: int, seed: int, threads: int | None) -> None:
    """PLAYER_A against PLAYER_B here, without Redis (default: the run's newest weights against random).

    Players as in `azjobs eval`; network players read the newest (or net:V) weights of --run-dir.
    The last line is JSON: wins, draws, losses and A's share of the points.
    """
    import numpy as np

    from azjobs.eval.match import play_match
    from azjobs.players import load_player

    set_threads(threads)
    found, a = load_player(player_a, run_dir=session.run_dir, game=game, sims=sims)
    _, b = load_player(player_b, run_dir=session.run_dir, game=found.name, sims=sims)
    result = play_match(found, a, b, games, np.random.default_rng(seed), opening_moves=opening_moves)
    say(f"{a.name} against {b.name} in {found.name}: {result.a_wins} won, {result.draws} drawn, "
        f"{result.b_wins} lost ({100 * result.a_score:.1f}% of the points)")
    click.echo(json.dumps({"game": found.name, **result.to_dict()}))
