"""`azjobs bench strength`, `oracle` and `match`: how well a player plays, here, without Redis (compare: compare.py)."""

from __future__ import annotations

import json

import click

from azjobs.cli.bench import bench_group
from azjobs.cli.context import Session, pass_session, say, set_threads
from azjobs.cli.options import (
    RUN_SIMS,
    device_option,
    game_option,
    player_option,
    run_dir_option,
    seed_option,
    sims_option,
    threads_option,
)


@bench_group.command("strength")
@run_dir_option(required=False)
@click.option(
    "--positions",
    "positions_file",
    envvar="AZJOBS_BENCH_STRENGTH_POSITIONS",
    required=True,
    metavar="NAME|FILE",
    help="Labelled positions: a bundled set (connect4: 1,302 solved Connect Four positions) or a "
    "JSON-lines file (the format: docs/evaluation.md).",
)
@sims_option(multiple=True, help=RUN_SIMS + " Repeatable: each count scores each version.")
@click.option(
    "--minutes",
    default=None,
    metavar="M,M,...",
    help="A strength curve: score the run's newest version published within each of these training "
    "minutes (e.g. 10,20,30) instead of the newest.",
)
@click.option(
    "--at-positions",
    default=None,
    metavar="N,N,...",
    help="A strength curve against self-play: score the run's newest version published by the time the run "
    "had made each of these numbers of positions (e.g. 100k,250k,1M; from the positions_made its weights carry).",
)
@click.option(
    "--machine-seconds",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds spent measuring this machine's speed, once (as `azjobs bench net --threads 1` at batch 64), "
    "which every JSON line carries; 0: not measured (null).",
)
@player_option
@game_option
@seed_option("Seed of the players' random tie-breaks.")
@device_option(default="cpu", help="torch device of a network player.")
@click.option(
    "--record",
    is_flag=True,
    help="Also save the result under <run_dir>/evals/, so that `azjobs plot` draws it (net players).",
)
@threads_option()
@pass_session
def bench_strength_cmd(
    session: Session,
    positions_file: str,
    sims: tuple[int, ...],
    minutes: str | None,
    at_positions: str | None,
    machine_seconds: float,
    player: str,
    game: str | None,
    seed: int,
    device: str,
    record: bool,
    threads: int | None,
) -> None:
    """Share of labelled positions where the player picks an optimal move.

    Weakly correct: the move keeps the best outcome (win, draw, loss); strongly correct: it has the
    best score. Overall and by moves played (<=10, 11-20, 21+) on stderr; on stdout one JSON line per
    version and simulation count scored (one, without a curve and with at most one --sims), with the
    version's training minutes, positions and games made, and this machine's speed.
    """
    from azjobs.bench import strength

    if minutes is not None and at_positions is not None:
        raise click.UsageError("--minutes and --at-positions each make a curve: give one of them")
    try:
        marks = strength.parse_minutes(minutes) if minutes is not None else ()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--minutes") from None
    try:
        counts = strength.parse_positions(at_positions) if at_positions is not None else ()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--at-positions") from None
    set_threads(threads)
    strength.run(
        positions_file,
        player,
        run_dir=session.run_dir,
        game=game,
        sims=sims or (None,),
        minutes=marks,
        at_positions=counts,
        seed=seed,
        device=device,
        record=record,
        machine_seconds=machine_seconds,
    )


@bench_group.command("oracle")
@run_dir_option(required=True)
@sims_option(default=50, help="Simulations per move (0: the network's policy alone).")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0),
    default=None,
    help="Score the newest version published within this many minutes of training (default: the newest).",
)
@device_option(default="cpu", help="torch device of the network.")
@threads_option()
@pass_session
def bench_oracle_cmd(session: Session, sims: int, minutes: float | None, device: str, threads: int | None) -> None:
    """A run's network against the solved game (tic-tac-toe): optimal moves in every reachable position,
    games lost against perfect play as either side. The last line is JSON."""
    from azjobs.bench import oracle

    set_threads(threads)
    oracle.run(session.root, sims, minutes, device=device)


@bench_group.command("match")
@click.argument("player_a", default="net")
@click.argument("player_b", default="random")
@run_dir_option(required=False)
@game_option
@click.option(
    "--games",
    type=click.IntRange(min=2),
    default=50,
    show_default=True,
    help="Games to play (rounded up to even): each random opening once with each colour.",
)
@sims_option(help="Simulations per move of network players (default: the run's num_simulations; 0: policy alone).")
@click.option(
    "--opening-moves",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Random moves that open each pair of games.",
)
@seed_option("Seed of the random openings and the players' tie-breaks.")
@threads_option()
@pass_session
def bench_match_cmd(
    session: Session,
    player_a: str,
    player_b: str,
    game: str | None,
    games: int,
    sims: int | None,
    opening_moves: int,
    seed: int,
    threads: int | None,
) -> None:
    """PLAYER_A against PLAYER_B here, without Redis (default: the run's newest weights against random).

    Players as in `azjobs eval`; network players read the newest (or net:V, net:best) weights of --run-dir,
    net@RUN_DIR those of another run, agent:FILE an exported agent.
    The last line is JSON: wins, draws, losses and A's share of the points.
    """
    import numpy as np

    from azjobs.eval.match import play_match
    from azjobs.players import load_player

    set_threads(threads)
    found, a = load_player(player_a, run_dir=session.run_dir, game=game, sims=sims)
    _, b = load_player(player_b, run_dir=session.run_dir, game=found.name, sims=sims)
    result = play_match(found, a, b, games, np.random.default_rng(seed), opening_moves=opening_moves)
    say(
        f"{a.name} against {b.name} in {found.name}: {result.a_wins} won, {result.draws} drawn, "
        f"{result.b_wins} lost ({100 * result.a_score:.1f}% of the points)"
    )
    click.echo(json.dumps({"game": found.name, **result.to_dict()}))
