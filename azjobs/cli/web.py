"""`azjobs web`: one live page for a run, served by azjobs.web."""

from __future__ import annotations

from pathlib import Path

import click

from azjobs.cli.context import Session, pass_session
from azjobs.cli.options import listen_options, redis_url_option, run_dir_option
from azjobs.errors import AzjobsError


@click.command("web")
@redis_url_option
@run_dir_option(required=True)
@listen_options(
    8080,
    "File holding the password (or token) every request needs: HTTP basic auth, user azjobs, or "
    "?token=PASSWORD in the URL (default: $AZJOBS_WEB_PASSWORD, else none, which only loopback allows).",
)
@click.option(
    "--dashboard-url",
    default=None,
    help="Where the page links rq-dashboard (default: the run's Redis host, port 9181, where that is another "
    "machine; else this host).",
)
@click.option(
    "--tensorboard-url", default=None, help="Where the page links TensorBoard (default: this host, port 6006)."
)
@pass_session
def web_cmd(
    session: Session,
    bind: str,
    port: int,
    password_file: Path | None,
    dashboard_url: str | None,
    tensorboard_url: str | None,
) -> None:
    """One live page for the whole run: machines, the run, the networks, games to replay, and play.

    Read-only: it reads the run's Redis and its folder on the storage root and writes neither. With only
    --run-dir of a running `azjobs run`, it finds that run's embedded Redis (and again after a restart).
    """
    from azjobs.cluster import connection, dashboard
    from azjobs.run import read_file
    from azjobs.web import app

    password = connection.read_password(password_file, env=app.PASSWORD_ENV, what="the web page's password file")
    dashboard.check_exposure(bind, password, what="the web page", env=app.PASSWORD_ENV)
    if read_file(session.root) is None:
        raise AzjobsError(f"no run at {session.root} (no settings.toml): pass the --run-dir of a run")
    dashboard_url = dashboard_url or dashboard.on_redis_host(session.url())
    click.echo(
        f"azjobs web for run {session.name} at http://{bind}:{port}/ (read-only"
        f"{', password required' if password else ''})",
        err=True,
    )
    app.run(
        session.root,
        lambda: session.connect(find_local=True),
        bind=bind,
        port=port,
        password=password,
        dashboard_url=dashboard_url,
        tensorboard_url=tensorboard_url,
    )


COMMANDS = [web_cmd]
