"""Every option of every command reads an environment variable: the one its --help names, else
AZJOBS_<COMMAND>_<FLAG> (click's auto_envvar_prefix); the settings flags read AZJOBS_<NAME> through the settings."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.settings import ENV_PREFIX, FIELD_TYPES, PROCESS_SETTINGS

# Named in --help; shared by several commands, or (eval --games) kept off the eval_games setting's AZJOBS_EVAL_GAMES.
NAMED = {
    "AZJOBS_REDIS_URL",
    "AZJOBS_RUN_DIR",
    "AZJOBS_THREADS",
    "AZJOBS_EVAL_MATCH_GAMES",
    *(ENV_PREFIX + name.upper() for name in PROCESS_SETTINGS),
}
SETTINGS_ENV = {ENV_PREFIX + name.upper() for name in FIELD_TYPES}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def options(
    command: click.Command = main, ctx: click.Context | None = None
) -> Iterator[tuple[str, click.Option, str | None]]:
    """(command path, option, the variable it reads) of every command."""
    ctx = ctx or click.Context(main, info_name="azjobs", **main.context_settings)
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            auto = f"{ctx.auto_envvar_prefix}_{param.name.upper()}" if param.allow_from_autoenv else None
            yield ctx.command_path, param, param.envvar or auto
    for name, sub in getattr(command, "commands", {}).items():
        yield from options(sub, click.Context(sub, info_name=name, parent=ctx))


def flag_variable(path: str, option: click.Option) -> str:
    words = [*path.split()[1:], max(option.opts, key=len).lstrip("-")]
    return "_".join(["AZJOBS", *words]).upper().replace("-", "_")


def test_every_option_reads_its_variable() -> None:
    wrong = []
    for path, option, variable in options():
        if variable in NAMED:
            assert option.show_envvar, f"{path} {option.opts[0]} reads {variable}: --help should say so"
        elif variable is None:  # a settings flag (its variable: AZJOBS_<NAME>), or --version
            assert option.name in FIELD_TYPES or option.name == "version", f"{path} {option.opts[0]}"
        elif variable != flag_variable(path, option):
            wrong.append(f"{path} {option.opts[0]} reads {variable}, not {flag_variable(path, option)}")
    assert not wrong, "\n".join(wrong)


def test_no_option_reads_a_setting_variable() -> None:
    clashes = [
        f"{path} {option.opts[0]}"
        for path, option, variable in options()
        if variable in SETTINGS_ENV and option.name not in PROCESS_SETTINGS
    ]
    assert not clashes


def test_an_option_from_the_environment() -> None:
    result = CliRunner().invoke(
        main,
        ["bench", "match", "random", "random", "--game", "tictactoe"],
        env={"AZJOBS_BENCH_MATCH_GAMES": "4", "AZJOBS_EVAL_GAMES": "8"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["games"] == 4
