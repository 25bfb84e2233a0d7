"""`azjobs settings`, the example files and bad settings through the real loading paths of the CLI."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from azjobs import keys
from azjobs import settings as S
from azjobs.cli import main
from azjobs.games import BUILTIN_MODULES, load_games
from azjobs.run import SETTINGS_FILE, publish, resolve, write_file

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))
GAMES = sorted(name for name, game in load_games().items() if type(game).__module__ in BUILTIN_MODULES)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AZJOBS_* variable of the shell running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("AZJOBS_"):
            monkeypatch.delenv(name)


def invoke(args: list[str], **kwargs: object) -> Result:
    return CliRunner().invoke(main, args, **kwargs)


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def printed(args: list[str], tmp_path: Path, name: str = "printed.toml") -> Path:
    """`azjobs settings ARGS` saved to a file."""
    result = invoke(["settings", *args])
    assert result.exit_code == 0, result.output
    path = tmp_path / name
    path.write_text(result.stdout)
    return path


# azjobs settings


@pytest.mark.parametrize("game", GAMES)
def test_printed_settings_read_back_with_config_give_equal_settings(game: str, tmp_path: Path) -> None:
    saved = printed(["--game", game], tmp_path)
    assert resolve(saved, environ={}) == resolve(flags={"game": game}, environ={})
    again = printed(["--config", str(saved)], tmp_path, "again.toml")  # through the CLI's own --config
    assert again.read_text() == saved.read_text()


def test_printed_settings_carry_every_layer_and_a_comment_per_setting(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('game = "tictactoe"\nlearning_rate_schedule = "100:3e-4"\n')
    args = ["--config", str(config), "--gating", "1", "--c-puct", "2.5"]
    saved = printed(args, tmp_path)
    result = invoke(["settings", *args], env={"AZJOBS_EVAL_OPPONENTS": "random,mcts:8"})
    saved.write_text(result.stdout)
    got = resolve(saved, environ={})
    assert (got.game, got.gating, got.c_puct, got.learning_rate_schedule) == ("tictactoe", True, 2.5, "100:3e-4")
    assert got.eval_opponents == "random,mcts:8" and got.net_channels == 32  # environment; game default
    lines = saved.read_text().splitlines()
    for name in S.FIELD_TYPES:
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
        assert lines[at - 1] == f"# {S.DOCS[name]}; {S.SPECS[name].allowed(S.FIELD_TYPES[name])}"


def test_settings_of_a_run_from_its_folder_and_from_redis(tmp_path: Path, redis_client, redis_url: str) -> None:
    run_dir = tmp_path / "run1"
    stored = resolve(flags={"game": "othello", "seed": 7, "gumbel": True}, environ={})
    publish(redis_client, "run1", run_dir, stored)
    saved = printed(["--run-dir", str(run_dir)], tmp_path)
    assert resolve(saved, environ={}) == stored
    (run_dir / SETTINGS_FILE).unlink()  # the storage root lost it: the run's Redis still has it
    from_redis = printed(["--run-dir", str(run_dir), "--redis-url", redis_url], tmp_path, "redis.toml")
    assert resolve(from_redis, environ={}) == stored
    assert "run1" in from_redis.read_text().splitlines()[0]


def test_settings_of_a_run_refuse_new_values_and_a_missing_run(tmp_path: Path) -> None:
    write_file(tmp_path / "r", S.Settings())
    result = invoke(["settings", "--run-dir", str(tmp_path / "r"), "--num-simulations", "5"])
    assert result.exit_code == 2 and "fixed at its creation: drop --num-simulations" in result.stderr
    line = one_line_error(invoke(["settings", "--run-dir", str(tmp_path / "nothing")]))
    assert "no run at" in line and "check --run-dir" in line


# The example files


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_loads_through_config_and_validates(example: Path, tmp_path: Path) -> None:
    saved = printed(["--config", str(example)], tmp_path)
    got = resolve(saved, environ={})
    assert got == resolve(example, environ={}) and got.game == "connect4"
    written = tomllib.loads(example.read_text())
    assert {name: getattr(got, name) for name in written} == written  # nothing of it lost on the way


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_is_commented_line_by_line(example: Path) -> None:
    for line in example.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert " # " in line, f"{example.name}: no comment on {line!r}"


def test_both_examples_exist_and_the_gpu_one_is_sized_up() -> None:
    assert [path.name for path in EXAMPLES] == ["connect4-cpu.toml", "connect4-gpu.toml"]
    cpu, gpu = (resolve(path, environ={}) for path in EXAMPLES)
    assert gpu.inference_batch_size > cpu.inference_batch_size and gpu.games_in_flight > cpu.games_in_flight
    assert gpu.net_blocks * gpu.net_channels > cpu.net_blocks * cpu.net_channels
    assert "starting points" in EXAMPLES[1].read_text()


# Bad settings through the CLI: one line, never a traceback


@pytest.mark.parametrize(
    "content", ["batch_size = [\n", "c_puct = 0.0\n", 'gating = "ture"\n', "inference_wait_ms = nan\n"]
)
def test_a_bad_config_file_is_one_line(content: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(content)
    line = one_line_error(invoke(["settings", "--config", str(config)]))
    assert str(config) in line


@pytest.mark.parametrize(
    "content", [b'game = "connect4"\nbatch_size = [\n', b"\xff\xfe", b"", b'game = "connect4"\nreuse_tree = "yes"\n']
)
def test_a_damaged_run_settings_file_is_one_line_for_every_reader(
    content: bytes, tmp_path: Path, redis_url: str
) -> None:
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    (run_dir / SETTINGS_FILE).write_bytes(content)
    for args in (
        ["settings"],
        ["bestmove"],
        ["play"],
        ["worker", "--redis-url", redis_url],
        ["gpu-serve", "--redis-url", redis_url],
        ["train", "--redis-url", redis_url],
    ):
        line = one_line_error(invoke([*args, "--run-dir", str(run_dir)], input="3\n"))
        assert str(run_dir / SETTINGS_FILE) in line and "restore it from a backup" in line, args


def test_damaged_settings_in_redis_are_one_line(tmp_path: Path, redis_client, redis_url: str) -> None:
    redis_client.set(keys.settings("run1"), "{oops")
    line = one_line_error(invoke(["settings", "--run-dir", str(tmp_path / "run1"), "--redis-url", redis_url]))
    assert "not a JSON object" in line


@pytest.mark.parametrize("value", ["ture", "yes", "on"])
def test_a_misspelt_boolean_flag_is_a_usage_error_naming_the_spellings(value: str) -> None:
    result = invoke(["settings", "--reuse-tree", value])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"'{value}' is not one of 'true', '1', 'false', '0'" in result.stderr


@pytest.mark.parametrize("value, expected", [("0", False), ("FALSE", False), ("1", True), ("true", True)])
def test_boolean_flags_take_true_false_1_or_0(value: str, expected: bool, tmp_path: Path) -> None:
    saved = printed(["--reuse-tree", value], tmp_path)
    assert resolve(saved, environ={}).reuse_tree is expected
