"""Looking at a run: status, doctor, dashboard, plot, settings; and the games this install knows (web: web.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from azjobs.cli.context import Session, pass_session, say
from azjobs.cli.options import listen_options, redis_url_option, run_dir_option, settings_options
from azjobs.cluster.connection import redact
from azjobs.errors import AzjobsError

if TYPE_CHECKING:
    from azjobs.cluster.status import Snapshot
    from azjobs.run import Run
    from azjobs.settings import Settings


@click.command("status")
@redis_url_option
@run_dir_option(required=True)
@click.option(
    "--json", "as_json", is_flag=True, envvar="AZJOBS_STATUS_JSON", help="Print one JSON object instead of tables."
)
@click.option("--watch", is_flag=True, help="Refresh every 2 seconds until Ctrl-C.")
@pass_session
def status_cmd(session: Session, as_json: bool, watch: bool) -> None:
    """Workers, queues, servers, weights version, replay, trainer and evaluation's share of a run."""
    from rich.console import Console

    from azjobs.cluster import status

    run = session.run(find_local=True)
    snap = status.collect(run.redis, run.name)
    if as_json:
        click.echo(json.dumps(snap.to_dict()))
    elif watch:
        _watch(run, snap)
    else:
        Console().print(status.render(snap))


def _watch(run: Run, snap: Snapshot) -> None:
    from rich.live import Live

    from azjobs.cluster import status

    with Live(status.render(snap), refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(2)
                live.update(status.render(status.collect(run.redis, run.name), previous=snap))
        except KeyboardInterrupt:
            pass


@click.command("doctor")
@redis_url_option
@run_dir_option(required=True)
@click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds between the two looks at queues and servers (0: one look).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="AZJOBS_DOCTOR_JSON",
    help="Print one JSON list of verdicts instead of lines.",
)
@pass_session
def doctor_cmd(session: Session, interval: float, as_json: bool) -> None:
    """Check the run: Redis, storage root, processes, versions, CUDA, queues; one verdict per line.

    Each line is `ok`, `warn` or `FAIL`, what was found and the fix. Exit code 1 if any check failed.
    """
    from azjobs.cluster import doctor

    verdicts = doctor.diagnose(session.url(), session.root, interval_s=interval)
    click.echo(json.dumps(doctor.as_json(verdicts)) if as_json else doctor.render(verdicts))
    if doctor.failed(verdicts):
        sys.exit(1)


@click.command("dashboard")
@redis_url_option
@run_dir_option(required=False)
@listen_options(
    9181,
    "File holding the password every page asks for (user azjobs; default: "
    "$AZJOBS_DASHBOARD_PASSWORD, else none, which only loopback allows).",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Turn on the write actions (delete, requeue, empty, compact); off, they answer 403.",
)
@pass_session
def dashboard_cmd(session: Session, bind: str, port: int, password_file: Path | None, allow_actions: bool) -> None:
    """rq-dashboard on the run's Redis: queues, jobs (JSON, never unpickled) and workers; read-only by default.

    With only --run-dir of a running `azjobs run`, it shows that run's embedded Redis.
    """
    from azjobs.cluster import dashboard
    from azjobs.cluster.connection import connect, effective_url

    password = dashboard.read_password(password_file)
    dashboard.check_exposure(bind, password)
    url = effective_url(session.url())
    connect(url)  # a clear one-line error before the web server starts
    actions = "write actions on" if allow_actions else "read-only"
    click.echo(
        f"rq-dashboard for {redact(url)} at http://{bind}:{port}/ ({actions}"
        f"{', password required' if password else ''})",
        err=True,
    )
    dashboard.run(url, bind=bind, port=port, password=password, allow_actions=allow_actions)


@click.command("plot")
@run_dir_option(required=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG file to write (default: <run_dir>/evals/strength.png).",
)
@pass_session
def plot_cmd(session: Session, out: Path | None) -> None:
    """Ratings and accuracy of the run's versions against training time and steps, as a PNG.

    Reads the storage root only; the last line is JSON (the ratings and accuracy points).
    """
    from azjobs.eval import plot

    path, summary = plot.plot(session.root, out)
    for player, rating in summary.to_dict()["ratings"].items():
        click.echo(f"{player:>14}  {rating['elo']:7.1f} ± {rating['se']:5.1f}  ({rating['games']} games)")
    say(f"wrote {path}")
    click.echo(json.dumps({"plot": str(path), **summary.to_dict()}))


@click.command("settings")
@redis_url_option
@run_dir_option(required=False)
@settings_options
@pass_session
def settings_cmd(session: Session, config: Path | None, **flags: Any) -> None:
    """Print the effective settings as a TOML file that --config accepts, each line with its meaning.

    Without --run-dir: what a new run gets (defaults < game < --config < AZJOBS_* < flags).
    With --run-dir: the run's stored settings, from its settings.toml; with --redis-url, from the
    run's Redis as its processes read them (else its settings.toml).
    """
    from azjobs.run import resolve
    from azjobs.settings import to_toml

    if session.run_dir is None:
        found = resolve(config, flags)
        title = f"azjobs settings for a new {found.game} run; use with `azjobs run --config FILE`."
    else:
        given = [f"--{name.replace('_', '-')}" for name, value in flags.items() if value is not None]
        if config is not None or given:
            raise click.UsageError(
                f"a run's settings are fixed at its creation: drop {(given or ['--config'])[0]} "
                f"with --run-dir (docs/settings.md)"
            )
        found, title = _stored(session), f"azjobs settings of run {session.name} (stored when it was created)."
    click.echo(to_toml(found, title), nl=False)


def _stored(session: Session) -> Settings:
    """The run's stored settings: from its Redis with --redis-url, else from its settings.toml."""
    from azjobs.run import SETTINGS_FILE, read_file

    if session.redis_url is None:
        stored = read_file(session.root)
    else:
        stored = session.run().settings()
    if stored is None:
        raise AzjobsError(
            f"no run at {session.run_dir}: no {SETTINGS_FILE} there"
            + ("" if session.redis_url is None else " and no such run in Redis")
            + "; check --run-dir"
        )
    return stored


@click.command("games")
def games_cmd() -> None:
    """List the games azjobs knows: built in, installed (entry points azjobs.games) and in AZJOBS_GAMES."""
    from azjobs.games import load_games

    for name, game in sorted(load_games().items()):
        c, h, w = game.planes_shape
        click.echo(
            f"{name:<12} planes {c}x{h}x{w}, {game.num_actions} actions, "
            f"{game.num_symmetries} symmetries  ({type(game).__module__})"
        )


COMMANDS = [status_cmd, doctor_cmd, dashboard_cmd, plot_cmd, settings_cmd, games_cmd]
