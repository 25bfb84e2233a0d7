"""The `azjobs` command: a thin layer over each role's `run()`, one module per group of commands.

roles: run, train, gpu-serve, worker, redis; inspect: status, doctor, dashboard, plot, settings, games; web: web;
play: play, bestmove, eval; export: export; bench (search, net, gpu, transport, selfplay), strength (bench
strength, oracle, match), compare (bench compare), soak (bench soak). Shared options: options.py; the context
object (the run and its Redis): context.py.
Commands that use a run's Redis take --redis-url (env AZJOBS_REDIS_URL); those of a run, --run-dir (env
AZJOBS_RUN_DIR); every other option reads AZJOBS_<COMMAND>_<OPTION> (AZJOBS_BENCH_NET_BATCH_SIZES), but
the settings flags, which read AZJOBS_<NAME>. Errors a user can cause end as one line on stderr and a
non-zero exit code.
"""

from __future__ import annotations

from typing import Any

import click

from azjobs import __version__
from azjobs.cli import compare, export, inspect, play, roles, soak, strength, web  # noqa: F401 (bench commands)
from azjobs.cli.bench import bench_group
from azjobs.cli.context import Session, say
from azjobs.errors import AzjobsError
from azjobs.settings import SettingsError


class AzjobsGroup(click.Group):
    """Turns the errors a user can cause into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (AzjobsError, SettingsError) as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=AzjobsGroup, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "AZJOBS"})
@click.version_option(__version__, prog_name="azjobs", allow_from_autoenv=False)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Train AlphaZero agents for board games as Redis/RQ jobs on shared storage.

    Start with `azjobs run`: everything on one machine. The same roles spread over
    machines (worker, gpu-serve, train) are the distributed setup.
    """
    ctx.obj = Session()


for command in [*roles.COMMANDS, *inspect.COMMANDS, *web.COMMANDS, *play.COMMANDS, *export.COMMANDS, bench_group]:
    main.add_command(command)

__all__ = ["main", "say"]
