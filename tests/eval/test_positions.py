"""Labelled sets by name: the bundled Connect Four set, paths, unknown names, and the stored setting."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from labels import labelled_lines

from azjobs import keys
from azjobs.cli import main
from azjobs.errors import AzjobsError
from azjobs.eval import records
from azjobs.eval.positions import BUNDLED, DATA_DIR, load_positions, resolve_positions
from azjobs.games import get_game
from azjobs.run import fetch, publish, resolve
from azjobs.train.schedule import copy_positions

C4 = get_game("connect4")
TTT = get_game("tictactoe")
ROOT = Path(__file__).resolve().parents[2]


def test_the_bundled_connect4_set_loads_by_name() -> None:
    labels = load_positions("connect4", C4)
    assert len(labels) == 1302
    assert resolve_positions("connect4") == DATA_DIR / "connect4.jsonl"
    assert labels.moves_played.min() >= 4 and labels.moves_played.max() <= 30


def test_every_bundled_file_is_package_data() -> None:
    """A non-editable install carries the bundled sets: pyproject's package data covers each file."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["azjobs.eval"]
    shipped = [path.relative_to(DATA_DIR.parent).as_posix() for path in DATA_DIR.iterdir()]
    assert {BUNDLED[name] for name in BUNDLED} <= {path.name for path in DATA_DIR.iterdir()}
    assert all(any(fnmatch.fnmatch(name, p) for p in patterns) for name in shipped), (shipped, patterns)


def test_a_path_still_works(tmp_path: Path) -> None:
    path = tmp_path / "ttt.jsonl"
    path.write_text("\n".join(labelled_lines(12)) + "\n")
    assert resolve_positions(str(path)) == path
    assert len(load_positions(path, TTT)) == 12


@pytest.mark.parametrize(
    "spec, error",
    [
        ("connect5", "unknown labelled set 'connect5': name a bundled set (connect4) or give a JSON-lines file's path"),
        (
            "nope.jsonl",
            "labelled positions file nope.jsonl not found: check the path, or name a bundled set (connect4)",
        ),
        ("sub/nope", "labelled positions file sub/nope not found"),
    ],
)
def test_unknown_names_and_missing_files_say_what_to_do(spec: str, error: str) -> None:
    with pytest.raises(AzjobsError) as e:
        resolve_positions(spec)
    assert str(e.value).startswith(error)


def test_the_command_takes_a_name_and_says_what_is_wrong() -> None:
    ok = CliRunner().invoke(
        main, ["bench", "strength", "--game", "connect4", "--player", "random", "--positions", "connect4"]
    )
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout.strip().splitlines()[-1])
    assert out["positions"] == 1302 and out["positions_file"] == "connect4"
    bad = CliRunner().invoke(
        main, ["bench", "strength", "--game", "connect4", "--player", "random", "--positions", "connect5"]
    )
    assert bad.exit_code != 0
    assert bad.stderr.strip() == (
        "Error: unknown labelled set 'connect5': name a bundled set (connect4) or give a JSON-lines file's path"
    )


def test_run_refuses_an_unknown_set_before_starting() -> None:
    result = CliRunner().invoke(main, ["run", "--minutes", "1", "--eval-positions", "connect5"])
    assert result.exit_code != 0 and "unknown labelled set 'connect5'" in result.stderr


def test_the_stored_setting_keeps_the_name(redis_client: redis.Redis, tmp_path: Path) -> None:
    """Each machine resolves the name from its own install; the trainer copies the set into the run."""
    run_dir = tmp_path / "c4run"
    settings = resolve(
        None, {"game": "connect4", "net_blocks": 1, "net_channels": 8, "eval_positions": "connect4"}, environ={}
    )
    publish(redis_client, run_dir.name, run_dir, settings)
    redis_client.delete(keys.settings(run_dir.name))  # read back from the storage root, then from Redis
    assert fetch(redis_client, run_dir.name, run_dir).eval_positions == "connect4"
    assert fetch(redis_client, run_dir.name).eval_positions == "connect4"
    logs: list[str] = []
    copy_positions(settings, C4, run_dir, logs.append)
    copied = records.evals_dir(run_dir) / records.POSITIONS_FILE
    assert copied.read_bytes() == (DATA_DIR / "connect4.jsonl").read_bytes()
    assert logs == [f"trainer: labelled positions connect4 copied to {copied}"]
