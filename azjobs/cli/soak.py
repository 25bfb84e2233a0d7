"""`azjobs bench soak`: one gpu-serve under load, or with --system the whole system under faults."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from azjobs.cli.bench import bench_group
from azjobs.cli.context import Session, pass_session, say
from azjobs.cli.options import run_dir_option, settings_options
from azjobs.cluster.connection import URL_ENV
from azjobs.settings import Settings


@bench_group.command("soak")
@click.option(
    "--seconds", type=click.FloatRange(min=1), default=300.0, show_default=True, help="How long the load runs."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Client processes, each standing in for one self-play worker (default 8); with --system, "
    "real workers (default 3).",
)
@click.option(
    "--games",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Games per worker: positions in each of its requests (not with --system).",
)
@click.option(
    "--system",
    is_flag=True,
    help="The whole system: trainer, gpu-serve and workers, with faults injected on a schedule; "
    "checks that nothing is lost or counted twice and that memory stays flat.",
)
@click.option(
    "--fault-every",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="With --system: seconds between faults (worker killed, gpu-serve killed, Redis restarted, "
    "garbage requests, in turn).",
)
@click.option("--keep", is_flag=True, help="With --system: keep the run folder and logs (always kept on a failure).")
@settings_options
def soak_cmd(
    config: Path | None,
    seconds: float,
    workers: int | None,
    games: int,
    system: bool,
    fault_every: float,
    keep: bool,
    **flags: Any,
) -> None:
    """Load one gpu-serve on loopback: request latency percentiles, lost or wrong replies, memory of every process.

    With --system, the whole system under faults instead; one JSON line of figures and checks, exit code 1
    if a check failed. Settings flags (--game, --net-blocks, --inference-batch-size, ...) set the run; with
    --system an unset one takes the soak's tiny tic-tac-toe run (no --config or --game given).
    """
    from azjobs.run import resolve

    if system:
        from azjobs.bench import system_soak

        settings = resolve(config, flags if config else system_soak.tiny_defaults(flags))
        _system_soak(settings, seconds, workers or 3, fault_every, keep)
    else:
        _plain_soak(resolve(config, flags), seconds, workers or 8, games)


def _system_soak(settings: Settings, seconds: float, workers: int, fault_every: float, keep: bool) -> None:
    from azjobs.bench import system_soak

    report = system_soak.run(settings, seconds=seconds, workers=workers, fault_every=fault_every, log=say, keep=keep)
    replay = report["replay"]
    say(
        f"soak --system: {report['faults_injected']} faults, {replay['finished_jobs']} jobs finished, "
        f"{replay['games_counted']} games counted, {replay['games_on_disk']} on disk; weights "
        f"{report['weights']['first']} -> {report['weights']['last']}; failed checks: "
        f"{', '.join(report['checks_failed']) or 'none'}"
    )
    click.echo(json.dumps(report))
    if report["checks_failed"]:
        sys.exit(1)


def _plain_soak(settings: Settings, seconds: float, workers: int, games: int) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from azjobs.bench import soak

    columns = (
        TextColumn("soak"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[requests]} requests"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("soak", total=seconds, requests=0)
        report = soak.run(
            settings,
            seconds=seconds,
            workers=workers,
            games=games,
            log=say,
            progress=lambda done, requests: bar.update(task, completed=done, requests=requests),
        )
    latency = report["latency_ms"]
    say(
        f"soak: {report['answered']} of {report['requests']} requests answered, {report['lost']} lost, "
        f"{report['wrong']} wrong, {report['duplicates']} duplicated; latency p50 {latency.get('p50')} ms, "
        f"p99 {latency.get('p99')} ms; largest memory growth {report['rss_growth_mb']} MiB"
    )
    click.echo(json.dumps(report))


@bench_group.command("soak-client", hidden=True)
@run_dir_option(required=True)
@click.option("--index", type=int, required=True)
@click.option("--games", type=int, required=True)
@click.option("--seconds", type=float, required=True)
@pass_session
def soak_client_cmd(session: Session, index: int, games: int, seconds: float) -> None:
    """One client process of `azjobs bench soak` (started by it)."""
    import dataclasses
    import os

    import redis

    from azjobs.bench import soak
    from azjobs.run import Run

    run = Run.at(session.root, redis.Redis.from_url(os.environ[URL_ENV]))
    result = soak.client_main(run, index, games, seconds)
    click.echo(json.dumps(dataclasses.asdict(result)))
