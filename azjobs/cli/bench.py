"""`azjobs bench`: throughput of each layer (search, net, gpu, transport, selfplay); soak is in cli/soak.py,
strength and match in cli/strength.py. Each prints one JSON object as its last line (figures in docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import click

from azjobs.cli.context import set_threads
from azjobs.cli.options import (
    bench_options,
    cuda_graphs_option,
    device_option,
    serve_flag_options,
    sims_option,
    threads_option,
)
from azjobs.settings import Settings


@click.group("bench")
def bench_group() -> None:
    """Benchmarks and measures of strength; each prints its results as JSON lines, the last line one JSON object.

    The throughput benchmarks measure in three windows and report the median; progress goes to stderr.
    """


def bench_settings(game: str, **flags: Any) -> Settings:
    """The game's default settings with the benchmark's flags (no file, no environment)."""
    from azjobs.run import resolve

    return resolve(None, {"game": game, **flags}, environ={})


@bench_group.command("search")
@bench_options(seconds=45.0)
@click.option(
    "--games-in-flight",
    type=click.IntRange(min=2),
    default=None,
    help="Games searched at once, in two groups (default: the game's setting).",
)
@sims_option(min=1, help="Simulations per move (default: the game's).")
@click.option("--reuse-tree/--no-reuse-tree", default=True, show_default=True)
@click.option(
    "--set",
    "changes",
    envvar="AZJOBS_BENCH_SEARCH_SET",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any other setting, e.g. --set gumbel=true --set full_search_prob=0.25 (repeatable).",
)
def bench_search_cmd(
    game: str, seconds: float, games_in_flight: int | None, sims: int | None, reuse_tree: bool, changes: tuple[str, ...]
) -> None:
    """Search alone (a uniform evaluator, no network): simulations/s per core."""
    from azjobs.bench import search

    pairs = [change.partition("=") for change in changes]
    if any(not sep for _, sep, _ in pairs):
        raise click.UsageError("--set takes NAME=VALUE, e.g. --set gumbel=true")
    extra = {name.strip().replace("-", "_"): value.strip() for name, _, value in pairs}
    settings = bench_settings(
        game, games_in_flight=games_in_flight, num_simulations=sims, reuse_tree=reuse_tree, **extra
    )
    search.run(settings, seconds, changed=sorted(extra))


@bench_group.command("net")
@bench_options(seconds=44.0)
@device_option()
@serve_flag_options
@cuda_graphs_option()
@click.option("--batch-sizes", default="1,2,4,8,16,32,64,128,256,512,1024", show_default=True)
@threads_option()
def bench_net_cmd(
    game: str,
    seconds: float,
    device: str | None,
    precision: str,
    channels_last: str,
    cuda_graphs: bool,
    batch_sizes: str,
    threads: int | None,
) -> None:
    """Forward positions/s of the game's network at batch sizes 1-1024."""
    from azjobs.bench import net
    from azjobs.inference.local import default_device
    from azjobs.inference.runner import RunnerOptions

    set_threads(threads)
    try:
        sizes = tuple(int(size) for size in batch_sizes.split(","))
    except ValueError:
        raise click.BadParameter("a comma-separated list of integers", param_hint="--batch-sizes") from None
    options = RunnerOptions(precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs)
    net.run(bench_settings(game), seconds, device or default_device(), options, sizes)


@bench_group.command("gpu")
@bench_options(seconds=3.0)
@click.option(
    "--compile/--no-compile",
    "compile_net",
    envvar="AZJOBS_BENCH_GPU_COMPILE",
    default=True,
    show_default=True,
    help="Include the torch.compile variant (in each device's own precision).",
)
@click.option("--compile-all", is_flag=True, help="Compile in every precision (each one compiles every batch size).")
def bench_gpu_cmd(game: str, seconds: float, compile_net: bool, compile_all: bool) -> None:
    """Prove a GPU machine: every serving variant on every visible GPU against the CPU in fp32
    (batches 1-1000, before and after a weights swap), positions/s at batches 256-1024, the trainer's
    steps/s. --seconds is the timing per variant. Exits 1 if a variant fails; without CUDA it says so
    and exits 0."""
    from azjobs.bench import gpu

    result = gpu.run(bench_settings(game), seconds, compile=compile_net, compile_all=compile_all)
    if not result["ok"]:
        raise SystemExit(1)


@bench_group.command("transport")
@bench_options(seconds=45.0)
@click.option("--leaves", type=click.IntRange(min=1), default=64, show_default=True, help="Positions per request.")
@click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Client processes, two requests in flight each (split over the shards).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="The servers' inference_batch_size (default: --leaves, one request per batch).",
)
@click.option(
    "--forward-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="The null network sleeps this long per batch, as a GPU's forward pass would.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Embedded Redis servers, each with its own null server (ignored with --redis-url).",
)
@click.option(
    "--redis-url",
    "redis_urls",
    envvar="AZJOBS_BENCH_TRANSPORT_REDIS_URL",
    multiple=True,  # not AZJOBS_REDIS_URL: a run's Redis is no bench's
    help="A Redis to use, one shard each when given more than once (default: embedded ones on unix "
    "sockets, as `azjobs run` uses).",
)
@click.option("--tcp", is_flag=True, help="The embedded Redis on a loopback TCP port instead of a unix socket.")
def bench_transport_cmd(
    game: str,
    seconds: float,
    leaves: int,
    clients: int,
    batch_size: int | None,
    forward_ms: float,
    shards: int,
    redis_urls: tuple[str, ...],
    tcp: bool,
) -> None:
    """Round trips worker -> Redis -> server with a null network: CPU us per leaf on each side."""
    import contextlib

    from azjobs.bench import transport
    from azjobs.cluster import embedded

    shape = transport.Shape(leaves=leaves, clients=clients, batch_size=batch_size or leaves, forward_ms=forward_ms)
    if redis_urls:
        transport.run(bench_settings(game), list(redis_urls), seconds, shape)
        return
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(embedded.start(unix_socket=not tcp)).url for _ in range(shards)]
        transport.run(bench_settings(game), urls, seconds, shape)


@bench_group.command("selfplay")
@bench_options(seconds=45.0)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds of serving before measuring.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: cores - 1).")
@click.option(
    "--server-threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch threads of gpu-serve (default: half the cores).",
)
@click.option("--games-per-job", type=click.IntRange(min=1), default=None)
@click.option("--games-in-flight", type=click.IntRange(min=2), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="inference_batch_size.")
@sims_option(min=1, help="num_simulations.")
@serve_flag_options
def bench_selfplay_cmd(
    game: str,
    seconds: float,
    warmup: float,
    workers: int | None,
    server_threads: int | None,
    games_per_job: int | None,
    games_in_flight: int | None,
    batch_size: int | None,
    sims: int | None,
    precision: str,
    channels_last: str,
) -> None:
    """The real pipeline (Redis, gpu-serve, workers as processes): positions/s, batch fill, forward share."""
    import os

    from azjobs.bench import selfplay
    from azjobs.cluster.local_mode import default_workers

    settings = bench_settings(
        game,
        games_per_job=games_per_job,
        games_in_flight=games_in_flight,
        inference_batch_size=batch_size,
        num_simulations=sims,
    )
    server_threads = server_threads or max(1, (os.cpu_count() or 2) // 2)
    flags = ["--precision", precision, "--channels-last", channels_last]
    # The run's batch, whatever AZJOBS_* says.
    flags += ["--batch-size", str(settings.inference_batch_size), "--wait-ms", str(settings.inference_wait_ms)]
    selfplay.run(settings, seconds, warmup, workers or default_workers(), server_threads, flags)
