"""The options several commands share, each defined once.

Every option reads an environment variable: the one its --help names, else click's AZJOBS_<COMMAND>_<OPTION>
(the main group's auto_envvar_prefix). The settings flags read AZJOBS_<NAME> through the settings' own layers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from azjobs.cli.context import session_setter
from azjobs.cluster.connection import URL_ENV
from azjobs.settings import DOCS, ENV_PREFIX, FALSE, FIELD_TYPES, PROCESS_SETTINGS, SPECS, TRUE

RUN_SIMS = "Simulations per move (default: the run's num_simulations; 0: the network's policy alone)."
PRECISIONS = ["auto", "fp32", "tf32", "bf16", "fp16"]
LAYOUTS = ["auto", "on", "off"]


def redis_url_option(f: Callable) -> Callable:
    """--redis-url (env AZJOBS_REDIS_URL), kept on the Session."""
    return click.option(
        "--redis-url",
        envvar=URL_ENV,
        default=None,
        show_envvar=True,
        expose_value=False,
        callback=session_setter("redis_url"),
        help="Redis of the run, redis://[:PASSWORD@]HOST:PORT/DB (default redis://127.0.0.1:6379/0).",
    )(f)


def unused_redis_url_option(f: Callable) -> Callable:
    """--redis-url for commands that read the storage root alone: accepted (scripts pass it to
    every command), ignored, and left out of --help so that no one expects it to matter."""
    return click.option("--redis-url", envvar=URL_ENV, default=None, hidden=True, expose_value=False)(f)


def run_dir_option(required: bool) -> Callable:
    """--run-dir (env AZJOBS_RUN_DIR), kept on the Session."""
    return click.option(
        "--run-dir",
        envvar="AZJOBS_RUN_DIR",
        show_envvar=True,
        required=required,
        expose_value=False,
        type=click.Path(file_okay=False, path_type=Path),
        callback=session_setter("run_dir"),
        help="The run's folder on the storage root; its last component names the run in Redis.",
    )


def threads_option(
    default: int | None = None, help: str = "CPU threads for torch (default: torch's own choice)."
) -> Callable:
    return click.option(
        "--threads",
        envvar="AZJOBS_THREADS",
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        show_envvar=True,
        help=help,
    )


def device_option(
    default: str | None = None, help: str = "torch device (default: cuda if present, else cpu)."
) -> Callable:
    return click.option("--device", default=default, show_default=default is not None, help=help)


def sims_option(min: int = 0, help: str = RUN_SIMS, default: int | None = None, multiple: bool = False) -> Callable:
    return click.option(
        "--sims",
        type=click.IntRange(min=min),
        default=default,
        show_default=default is not None,
        multiple=multiple,
        help=help,
    )


def seed_option(help: str) -> Callable:
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def bench_options(seconds: float) -> Callable:
    """A throughput benchmark's --game and --seconds."""

    def decorate(f: Callable) -> Callable:
        f = click.option(
            "--seconds",
            type=click.FloatRange(min=1),
            default=seconds,
            show_default=True,
            help="Time measured, over three windows (start-up and warm-up come on top).",
        )(f)
        return click.option("--game", default="connect4", show_default=True, help="The game (its default settings).")(f)

    return decorate


def precision_option(help: str = "As gpu-serve's --precision.") -> Callable:
    return click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help=help)


def channels_last_option(help: str = "As gpu-serve's --channels-last.") -> Callable:
    return click.option("--channels-last", type=click.Choice(LAYOUTS), default="auto", show_default=True, help=help)


def listen_options(port: int, password_help: str) -> Callable:
    """--bind, --port and --password-file of a command that serves web pages on loopback by default."""

    def decorate(f: Callable) -> Callable:
        f = click.option(
            "--password-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help=password_help
        )(f)
        f = click.option("--port", type=click.IntRange(1, 65535), default=port, show_default=True)(f)
        return click.option(
            "--bind",
            default="127.0.0.1",
            show_default=True,
            help="Address to serve on; beyond loopback (0.0.0.0: the LAN) a password is required.",
        )(f)

    return decorate


def cuda_graphs_option(help: str = "As gpu-serve's --cuda-graphs.") -> Callable:
    return click.option("--cuda-graphs", is_flag=True, help=help)


def serve_flag_options(f: Callable) -> Callable:
    """The benchmarks' --channels-last and --precision, as gpu-serve's."""
    return channels_last_option()(precision_option()(f))


def player_option(f: Callable) -> Callable:
    from azjobs.players import SPEC_HELP

    return click.option(
        "--player",
        default="net",
        show_default=True,
        help=f"Who chooses: {SPEC_HELP}. net is the run's newest weights (net:V: version V, net:best: the "
        "best) with --sims, net@RUN_DIR another run's; agent:FILE an exported agent (azjobs export); the others "
        "are baselines that need only --game.",
    )(f)


def game_option(f: Callable) -> Callable:
    return click.option("--game", default=None, help="The game, for a baseline player without --run-dir.")(f)


# The settings flags, generated from the Settings fields.


def settings_options(f: Callable) -> Callable:
    """--config, --game and one option per setting (env AZJOBS_<NAME>, read by the settings' layers)."""
    for name in reversed(list(FIELD_TYPES)):
        # Booleans strictly as the environment spells them: a misspelt one is an error, not false.
        kind = click.Choice(TRUE + FALSE, case_sensitive=False) if FIELD_TYPES[name] is bool else FIELD_TYPES[name]
        own = " (a process setting: on an existing run, this process's own value)" if name in PROCESS_SETTINGS else ""
        f = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default=None,
            help=DOCS[name] + own,
            allow_from_autoenv=False,
        )(f)  # AZJOBS_<NAME> is the setting's own layer
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML file of settings (defaults < file < AZJOBS_* environment < flags).",
    )(f)


def with_settings(f: Callable) -> Callable:
    """The command gets `settings` for a new run in place of --config and the settings flags."""

    @wraps(f)
    def wrapper(config: Path | None, **kwargs: Any) -> Any:
        from azjobs.run import resolve

        flags = {name: kwargs.pop(name) for name in FIELD_TYPES}
        return f(resolve(config, flags), **kwargs)

    return wrapper


def with_given_settings(f: Callable) -> Callable:
    """As with_settings, and `given`: the values --config, AZJOBS_* and the flags set, whose process
    settings are this process's own on an existing run."""

    @wraps(f)
    def wrapper(config: Path | None, **kwargs: Any) -> Any:
        from azjobs.run import from_given
        from azjobs.settings import given

        values = given(config, {name: kwargs.pop(name) for name in FIELD_TYPES})
        return f(from_given(values), values, **kwargs)

    return wrapper


def process_option(name: str) -> Callable:
    """The flag of process setting `name` (env AZJOBS_<NAME>): this process's own value, else the run's."""
    _, flag = PROCESS_SETTINGS[name]
    return click.option(
        flag,
        name,
        envvar=ENV_PREFIX + name.upper(),
        show_envvar=True,
        default=None,
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
