"""The `azjobs` command: a thin layer over each role's `run()`.

Every command takes --redis-url (env AZJOBS_REDIS_URL) and --run-dir (env AZJOBS_RUN_DIR).
Errors a user can cause end as one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from functools import wraps
from pathlib import Path
from typing import Any, Callable

import click

from azjobs import __version__
from azjobs.connection import URL_ENV, connect, redact
from azjobs.errors import AzjobsError
from azjobs.settings import DOCS, FIELD_TYPES, Settings, SettingsError


def say(message: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {message}", err=True)


class AzjobsGroup(click.Group):
    """Turns the errors a user can cause into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (AzjobsError, SettingsError) as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=AzjobsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="azjobs")
def main() -> None:
    """Train AlphaZero agents for board games as Redis/RQ jobs on shared storage.

    Start with `azjobs run`: everything on one machine. The same roles spread over
    machines (worker, gpu-serve, train) are the distributed setup.
    """


# Options shared by the commands.

def redis_url_option(f: Callable) -> Callable:
    return click.option(
        "--redis-url", envvar=URL_ENV, default=None, show_envvar=True,
        help="Redis of the run, redis://[:PASSWORD@]HOST:PORT/DB (default redis://127.0.0.1:6379/0).",
    )(f)


def run_dir_option(required: bool) -> Callable:
    return click.option(
        "--run-dir", envvar="AZJOBS_RUN_DIR", show_envvar=True, required=required,
        type=click.Path(file_okay=False, path_type=Path),
        help="The run's folder on the storage root; its last component names the run in Redis.",
    )


def threads_option(f: Callable) -> Callable:
    return click.option(
        "--threads", envvar="AZJOBS_THREADS", type=click.IntRange(min=1), default=None, show_envvar=True,
        help="CPU threads for torch (default: torch's own choice).",
    )(f)


def settings_options(f: Callable) -> Callable:
    """--config, --game and one option per setting (env AZJOBS_<NAME> works too)."""
    for name in reversed(list(FIELD_TYPES)):
        kind = FIELD_TYPES[name]
        f = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None, help=DOCS[name])(f)
    return click.option(
        "--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="TOML file of settings (defaults < file < AZJOBS_* environment < flags).",
    )(f)


def with_settings(f: Callable) -> Callable:
    @wraps(f)
    def wrapper(config: Path | None, **kwargs: Any) -> Any:
        from azjobs.settings import resolve

        flags = {name: kwargs.pop(name) for name in FIELD_TYPES}
        return f(resolve(config, flags), **kwargs)

    return wrapper


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the role finishes its step and tears down."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        say(f"got {signal.Signals(signum).name}: stopping")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def run_name(run_dir: Path) -> str:
    return Path(run_dir).resolve().name


def url_for(redis_url: str | None, run_dir: Path | None) -> str | None:
    """The given URL; else that of an `azjobs run` running on `run_dir` (its embedded Redis)."""
    from azjobs.local import LOCAL_URL_FILE

    local_url = Path(run_dir) / LOCAL_URL_FILE if run_dir is not None else None
    if redis_url is None and local_url is not None and local_url.exists():
        return local_url.read_text().strip()
    return redis_url


def join_run(redis_url: str | None, run_dir: Path):  # type: ignore[no-untyped-def]
    """Connect and wait (saying so) until the run exists; then (client, settings)."""
    from azjobs import settings as run_settings

    client = connect(redis_url)
    found = run_settings.wait(client, run_name(run_dir), run_dir, say)
    return client, found


# The roles.

@main.command("run")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Stop after this many minutes (Ctrl-C stops earlier).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Self-play workers to start (default: cores - 1, at least 1).")
@run_dir_option(required=False)
@settings_options
@with_settings
def run_cmd(settings: Settings, minutes: float, workers: int | None, run_dir: Path | None) -> None:
    """Everything on this machine: embedded Redis, gpu-serve, workers, trainer.

    Runs again on the same --run-dir (default runs/<game>) resume where it stopped.
    """
    from azjobs import local

    local.run(settings, run_dir or Path("runs") / settings.game, minutes=minutes, workers=workers)


@main.command("train")
@redis_url_option
@run_dir_option(required=True)
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps in all.")
@threads_option
@settings_options
@with_settings
def train_cmd(settings: Settings, redis_url: str | None, run_dir: Path, device: str | None,
              max_steps: int | None, threads: int | None) -> None:
    """The trainer: creates the run (or resumes it), trains and publishes weights."""
    from azjobs import settings as run_settings
    from azjobs.train import trainer

    set_threads(threads)
    client = connect(redis_url)
    stored = run_settings.publish(client, run_name(run_dir), run_dir, settings)
    if stored != settings:
        say(f"run {run_name(run_dir)} exists: using its stored settings")
    trainer.run(stored, client, run_name(run_dir), run_dir, device=device, stop=stop_on_signals(),
                max_steps=max_steps, log=say)


@main.command("gpu-serve")
@redis_url_option
@run_dir_option(required=True)
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
@threads_option
def serve_cmd(redis_url: str | None, run_dir: Path, device: str | None, threads: int | None) -> None:
    """The inference server: batches requests, runs the network, replies."""
    from azjobs.inference import server

    set_threads(threads)
    client, settings = join_run(redis_url, run_dir)
    server.run(settings, client, run_name(run_dir), run_dir, device=device, stop=stop_on_signals(), log=say)


@main.command("worker")
@redis_url_option
@run_dir_option(required=True)
@click.option("--evaluator", type=click.Choice(["remote", "local"]), default="remote", show_default=True,
              help="remote: through gpu-serve; local: the network in this process on the CPU.")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Stop after this many jobs.")
@threads_option
def worker_cmd(redis_url: str | None, run_dir: Path, evaluator: str, burst: bool, max_jobs: int | None,
               threads: int | None) -> None:
    """A self-play worker (an RQ worker that keeps its evaluator between jobs)."""
    from azjobs.jobs import worker

    set_threads(threads)
    client, settings = join_run(redis_url, run_dir)
    worker.run(settings, client, run_name(run_dir), run_dir, evaluator=evaluator, burst=burst,
               max_jobs=max_jobs, say=say)


# Looking at a run.

@main.command("status")
@redis_url_option
@run_dir_option(required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--watch", is_flag=True, help="Refresh every 2 seconds until Ctrl-C.")
def status_cmd(redis_url: str | None, run_dir: Path, as_json: bool, watch: bool) -> None:
    """Workers, queues, servers, weights version, replay and trainer of a run."""
    from rich.console import Console
    from rich.live import Live

    from azjobs import status

    client = connect(url_for(redis_url, run_dir))
    name = run_name(run_dir)
    snap = status.collect(client, name)
    if as_json:
        click.echo(json.dumps(snap.to_dict()))
        return
    if not watch:
        Console().print(status.render(snap))
        return
    with Live(status.render(snap), refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(2)
                live.update(status.render(status.collect(client, name), previous=snap))
        except KeyboardInterrupt:
            pass


@main.command("dashboard")
@redis_url_option
@run_dir_option(required=False)
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to serve on (0.0.0.0: the LAN).")
@click.option("--port", type=click.IntRange(1, 65535), default=9181, show_default=True)
def dashboard_cmd(redis_url: str | None, run_dir: Path | None, bind: str, port: int) -> None:
    """rq-dashboard on the run's Redis: queues, jobs (JSON) and workers.

    With only --run-dir of a running `azjobs run`, it shows that run's embedded Redis.
    """
    from azjobs import dashboard
    from azjobs.connection import effective_url

    url = effective_url(url_for(redis_url, run_dir))
    connect(url)  # a clear one-line error before the web server starts
    click.echo(f"rq-dashboard for {redact(url)} at http://{bind}:{port}/", err=True)
    dashboard.run(url, bind=bind, port=port)


@main.command("bestmove")
@redis_url_option
@run_dir_option(required=True)
@click.option("--sims", type=click.IntRange(min=0), default=None,
              help="Simulations per move (default: the run's num_simulations; 0: the network's policy alone).")
def bestmove_cmd(redis_url: str | None, run_dir: Path, sims: int | None) -> None:
    """Read positions (moves so far, one game per line) on stdin; print one move per line.

    Uses the newest weights on the storage root (--redis-url is accepted and unused).
    """
    from azjobs import bestmove

    agent = bestmove.load_agent(run_dir)
    sims = agent.settings.num_simulations if sims is None else sims
    chunk = 1 if sys.stdin.isatty() else bestmove.CHUNK
    for out in bestmove.answer(agent, sys.stdin, sims, chunk=chunk):
        click.echo(out)
        sys.stdout.flush()


# The games.

@main.command("games")
def games_cmd() -> None:
    """List the games azjobs knows: built in, installed (entry points azjobs.games) and in AZJOBS_GAMES."""
    from azjobs.games import load_games

    for name, game in sorted(load_games().items()):
        c, h, w = game.planes_shape
        click.echo(f"{name:<12} planes {c}x{h}x{w}, {game.num_actions} actions, "
                   f"{game.num_symmetries} symmetries  ({type(game).__module__})")


# Benchmarks: each subcommand prints one JSON object as its last line (figures in the README).

@main.group("bench")
def bench_group() -> None:
    """Benchmarks; each prints one JSON object as its last line."""


if __name__ == "__main__":
    main()
