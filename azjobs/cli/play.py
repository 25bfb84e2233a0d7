"""Using the agent: play against it, answer positions on stdin (bestmove), queue a match (eval)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from azjobs.cli.context import Session, pass_session, say
from azjobs.cli.options import (
    game_option,
    player_option,
    redis_url_option,
    run_dir_option,
    seed_option,
    sims_option,
    unused_redis_url_option,
)
from azjobs.errors import AzjobsError


@click.command("play")
@unused_redis_url_option
@run_dir_option(required=True)
@sims_option()
@click.option("--second", is_flag=True, help="Let azjobs move first.")
@seed_option("Seed of the agent's search.")
@pass_session
def play_cmd(session: Session, sims: int | None, second: bool, seed: int) -> None:
    """Play a game against the run's newest agent: the board drawn, your moves in the game's notation.

    Reads the newest weights from the storage root (no Redis needed).
    """
    from azjobs.players import bestmove, play

    agent = bestmove.load_agent(session.root)
    sims = agent.settings.num_simulations if sims is None else sims
    play.play(agent, sims=sims, human_first=not second, read=sys.stdin, say=click.echo, seed=seed)


@click.command("bestmove")
@unused_redis_url_option
@run_dir_option(required=False)
@sims_option()
@player_option
@game_option
@pass_session
def bestmove_cmd(session: Session, sims: int | None, player: str, game: str | None) -> None:
    """Read positions (moves so far, one game per line) on stdin; print one move per line.

    Uses the newest weights on the storage root (no Redis needed), or the --player named,
    e.g. `--player alphabeta:4 --game connect4`.
    """
    from azjobs.players import bestmove, load_player

    found, chosen = load_player(player, run_dir=session.run_dir, game=game, sims=sims)
    chunk = 1 if sys.stdin.isatty() else bestmove.CHUNK
    for out in bestmove.answer_with(found, chosen, sys.stdin, chunk=chunk):
        click.echo(out)
        sys.stdout.flush()


@click.command("eval")
@redis_url_option
@run_dir_option(required=True)
@click.argument("player_a")
@click.argument("player_b")
# Not AZJOBS_EVAL_GAMES: that is the eval_games setting of a new run.
@click.option(
    "--games",
    type=click.IntRange(min=2),
    default=None,
    envvar="AZJOBS_EVAL_MATCH_GAMES",
    show_envvar=True,
    help="Games to play, half with each colour (default: the run's eval_games).",
)
@click.option("--wait", is_flag=True, help="Wait for a worker to play it and print the result (JSON).")
@pass_session
def eval_cmd(session: Session, player_a: str, player_b: str, games: int | None, wait: bool) -> None:
    """Queue a match of PLAYER_A against PLAYER_B on the run's eval queue (a worker plays it).

    Players: net:V (weights version V), net:best, net@RUN_DIR:V (another run on the same storage
    root), agent:FILE[:sims=N] (an exported agent), random, oneply, alphabeta:DEPTH, mcts:SIMULATIONS.
    The result joins the run's ratings.
    """
    from azjobs.jobs import evaluate

    a, b = _versioned(player_a, session.root), _versioned(player_b, session.root)
    run = session.run(find_local=True)
    settings = run.join()
    job = evaluate.enqueue_match(run.redis, run.name, a, b, games or settings.eval_games)
    say(f"queued {job.description} ({games or settings.eval_games} games) as job {job.id}")
    if wait:
        click.echo(json.dumps(evaluate.wait_for(job)))


def _versioned(text: str, run_dir: Path) -> str:
    """The player spec `text`, checked, naming its weights version if a network (net:best: the one it is
    now), and another run's folder or an agent's file as a worker on any machine finds it: a path on
    the storage root that holds the run (a sibling folder), else an absolute one."""
    from azjobs.eval.standing import best_version
    from azjobs.players import PlayerSpec
    from azjobs.players.load import locator

    try:
        spec = PlayerSpec.parse(text)
    except ValueError as e:
        raise AzjobsError(str(e)) from None
    if spec.where is not None:
        found = locator(run_dir)(spec.where).resolve()
        if not found.exists():
            raise AzjobsError(f"player {text!r}: no {found}")
        if spec.kind == "agent":
            from azjobs.players.exported import load_agent_file

            load_agent_file(found, torchscript=False)  # what the worker will refuse, refused here already
        if spec.kind == "net" and found == Path(run_dir).resolve():
            spec = dataclasses.replace(spec, where=None)  # this run's own weights: one name in the ratings
        else:
            root = Path(run_dir).resolve().parent
            where = found.relative_to(root) if found.is_relative_to(root) else found
            spec = dataclasses.replace(spec, where=str(where))
    if spec.best:
        home = run_dir if spec.where is None else Path(run_dir).resolve().parent / spec.where
        spec = dataclasses.replace(spec, best=False, arg=best_version(home)[0])
    if spec.kind == "net" and spec.arg is None:
        raise AzjobsError(f"name the weights version: net:V or net:best, not {text!r}")
    return str(spec)


COMMANDS = [play_cmd, bestmove_cmd, eval_cmd]
