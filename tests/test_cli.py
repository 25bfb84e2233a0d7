"""The `azjobs` command: every user mistake ends as one line naming cause and fix, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from azjobs.cli import main
from azjobs.cluster import embedded
from azjobs.cluster.connection import PASSWORD_ENV, URL_ENV
from azjobs.settings import ENV_PREFIX, FIELD_TYPES

PASSWORD = "s3cret-Pw"  # the password of the `password_server` fixture
AZJOBS = [sys.executable, "-m", "azjobs"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AZJOBS_* setting of the shell running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def closed_url(password: str | None = None) -> str:
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{embedded.free_port()}/0"


def invoke(args: list[str], **kwargs: object) -> Result:
    return CliRunner().invoke(main, args, **kwargs)


def one_line_error(result: Result) -> str:
    """The single `Error: ...` line of a failed command (asserting there is exactly one, and no traceback)."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# --help and --version


def leaf_commands() -> list[list[str]]:
    """Every command line that runs something: the commands, and each subcommand of a group."""
    found = []
    for name, command in sorted(main.commands.items()):
        if isinstance(command, click.Group):
            found.extend([name, sub] for sub in sorted(command.commands))
        else:
            found.append([name])
    return found


GROUPS = [[name] for name, command in sorted(main.commands.items()) if isinstance(command, click.Group)]


@pytest.mark.parametrize("command", [[]] + GROUPS + leaf_commands())
def test_help_of_every_command(command: list[str]) -> None:
    result = invoke([*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    # Groups list their commands; the throughput benchmarks make runs of their own; `redis` serves many runs;
    # `games` lists games.
    own_runs = command[:1] == ["bench"] and command[1:] != ["strength"]
    if command not in ([], *GROUPS) and not own_runs and command not in (["redis"], ["games"]):
        assert "--run-dir" in result.stdout


def test_expected_commands_exist() -> None:
    assert {"run", "train", "gpu-serve", "worker", "status", "bestmove", "games"} <= set(main.commands)


def test_every_setting_has_a_flag() -> None:
    text = invoke(["train", "--help"]).stdout
    for name in FIELD_TYPES:
        assert f"--{name.replace('_', '-')}" in text


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("azjobs, version ")


# Redis that cannot be used


@pytest.mark.parametrize("command", [["train"], ["worker"], ["gpu-serve"], ["status"]])
def test_unreachable_redis(command: list[str], tmp_path: Path) -> None:
    url = closed_url(PASSWORD)
    line = one_line_error(invoke([*command, "--run-dir", str(tmp_path / "r"), "--redis-url", url]))
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in line
    assert "--redis-url" in line
    assert PASSWORD not in line


def test_unreachable_redis_from_environment(tmp_path: Path) -> None:
    result = invoke(["status", "--run-dir", str(tmp_path / "r")], env={URL_ENV: closed_url()})
    assert "cannot reach Redis" in one_line_error(result)


def test_wrong_password(password_server: embedded.EmbeddedRedis, tmp_path: Path) -> None:
    url = password_server.url.replace(PASSWORD, "wrong-one")
    line = one_line_error(invoke(["status", "--run-dir", str(tmp_path / "r"), "--redis-url", url]))
    assert "refused the password" in line and "***" in line
    assert "wrong-one" not in line and PASSWORD not in line


def test_wrong_password_from_environment(password_server: embedded.EmbeddedRedis, tmp_path: Path) -> None:
    url = password_server.url.replace(f":{PASSWORD}@", "")
    result = invoke(["worker", "--run-dir", str(tmp_path / "r"), "--redis-url", url], env={PASSWORD_ENV: "bad-pw"})
    line = one_line_error(result)
    assert "refused the password" in line and "bad-pw" not in line


def test_missing_password(password_server: embedded.EmbeddedRedis, tmp_path: Path) -> None:
    url = password_server.url.replace(f":{PASSWORD}@", "")
    line = one_line_error(invoke(["train", "--run-dir", str(tmp_path / "r"), "--redis-url", url]))
    assert "needs a password" in line and PASSWORD_ENV in line


def test_bad_redis_url(tmp_path: Path) -> None:
    line = one_line_error(invoke(["status", "--run-dir", str(tmp_path), "--redis-url", f"http://:{PASSWORD}@h/0"]))
    assert "bad Redis URL http://:***@h/0" in line and PASSWORD not in line


# Bad settings


def test_bad_flag_value(tmp_path: Path) -> None:
    result = invoke(["train", "--run-dir", str(tmp_path), "--batch-size", "lots"])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    # click's usage error: a usage line, a hint naming --help, and one line naming the flag and value.
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--batch-size" in errors[0] and "'lots'" in errors[0]
    assert "--help" in result.stderr


def test_bad_setting_in_environment(tmp_path: Path) -> None:
    result = invoke(
        ["train", "--run-dir", str(tmp_path), "--redis-url", closed_url()], env={"AZJOBS_LEARNING_RATE": "fast"}
    )
    line = one_line_error(result)
    assert "learning_rate" in line and "the environment" in line and "'fast'" in line


def test_unknown_setting_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('game = "tictactoe"\nbatch_sise = 64\n')
    line = one_line_error(invoke(["train", "--run-dir", str(tmp_path / "r"), "--config", str(config)]))
    assert "unknown setting 'batch_sise'" in line and str(config) in line and "docs/settings.md" in line


def test_badly_typed_setting_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("num_simulations = 2.5\n")
    line = one_line_error(invoke(["train", "--run-dir", str(tmp_path / "r"), "--config", str(config)]))
    assert "num_simulations" in line and "must be an integer" in line


def test_invalid_toml(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("batch_size = [\n")
    line = one_line_error(invoke(["train", "--run-dir", str(tmp_path / "r"), "--config", str(config)]))
    assert "is not valid TOML" in line and str(config) in line


def test_missing_config_file(tmp_path: Path) -> None:
    config = tmp_path / "nowhere.toml"
    line = one_line_error(invoke(["train", "--run-dir", str(tmp_path / "r"), "--config", str(config)]))
    assert "cannot read config file" in line and str(config) in line


def test_unknown_game_names_the_known_ones(tmp_path: Path) -> None:
    line = one_line_error(invoke(["train", "--game", "chess", "--run-dir", str(tmp_path), "--redis-url", closed_url()]))
    assert "unknown game 'chess'" in line and "connect4" in line and "tictactoe" in line


def test_unknown_game_in_local_mode(tmp_path: Path) -> None:
    line = one_line_error(invoke(["run", "--game", "chess", "--run-dir", str(tmp_path)]))
    assert "unknown game 'chess'" in line


# Looking at a run that is not there


def test_bestmove_without_a_run(tmp_path: Path) -> None:
    line = one_line_error(invoke(["bestmove", "--run-dir", str(tmp_path / "empty")], input="5\n"))
    assert "no run at" in line and "--run-dir" in line


# As a user runs it: a real process, its exit code and its stderr.


def run_azjobs(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return subprocess.run([*AZJOBS, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)


def test_process_unknown_game(tmp_path: Path) -> None:
    done = run_azjobs(["train", "--game", "chess", "--run-dir", "r", "--redis-url", closed_url()], tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: setting game: unknown game 'chess'; choose one of: connect4, ")
    assert "docs/your-own-game.md" in line


def test_process_unreachable_redis_hides_password(tmp_path: Path) -> None:
    done = run_azjobs(["worker", "--run-dir", "r", "--redis-url", closed_url(PASSWORD)], tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach Redis at redis://:***@")
    assert PASSWORD not in done.stderr + done.stdout
