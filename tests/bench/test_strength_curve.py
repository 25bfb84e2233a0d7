"""`azjobs bench strength --minutes`: a strength curve, the newest version within each mark of training
minutes scored with each simulation count, one JSON line each (scoring one player: tests/eval/test_strength.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from labels import labelled_lines

from azjobs.cli import main
from azjobs.eval import records


@pytest.fixture(scope="module")
def ttt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "ttt.jsonl"
    path.write_text("\n".join(labelled_lines(100)) + "\n")
    return path


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.strip().splitlines()]


def test_the_curve_scores_the_newest_version_within_each_mark(tmp_path: Path, ttt_file: Path, write_run) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 30.0, 2: 90.0, 3: 200.0})  # published after 0.5, 1.5 and 3.33 minutes of training
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "strength",
            "--run-dir",
            str(run_dir),
            "--positions",
            str(ttt_file),
            "--minutes",
            "0.25,1,2,4",
            "--sims",
            "2",
            "--sims",
            "0",
            "--record",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert lines[0] == {"minutes": 0.25, "error": "no version published by then"}
    assert [(p["minutes"], p["weights_version"], p["sims"], p["train_minutes"]) for p in lines[1:]] == [
        (1.0, 1, 2, 0.5),
        (1.0, 1, 0, 0.5),
        (2.0, 2, 2, 1.5),
        (2.0, 2, 0, 1.5),
        (4.0, 3, 2, 3.3),
        (4.0, 3, 0, 3.3),
    ]
    for point in lines[1:]:
        assert point["positions"] == 100 and point["player"] == f"net:{point['weights_version']}"
        assert 0 <= point["strong_accuracy"] <= point["weak_accuracy"] <= 1
        assert set(point["phases"]) == {"<=10", "11-20", "21+"}
    kept = records.read_files(run_dir, records.AccuracyRecord)  # where `azjobs plot` finds them
    assert sorted((k.version["version"], k.sims) for k in kept) == [(1, 0), (1, 2), (2, 0), (2, 2), (3, 0), (3, 2)]
    assert "within 4 min of training: net:3, published at 3.3 min" in result.stderr


def test_without_minutes_one_line_per_simulation_count(tmp_path: Path, ttt_file: Path, write_run) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 0.0, 2: 60.0})
    result = CliRunner().invoke(
        main,
        ["bench", "strength", "--run-dir", str(run_dir), "--positions", str(ttt_file), "--sims", "3", "--sims", "0"],
    )
    assert result.exit_code == 0, result.output
    assert [(p["weights_version"], p["sims"]) for p in json_lines(result.stdout)] == [(2, 3), (2, 0)]
    assert "minutes" not in json_lines(result.stdout)[0]


@pytest.mark.parametrize(
    "args, error",
    [
        (["--minutes", "10,x"], "'x' is not a number of minutes"),
        (["--minutes", "10", "--player", "random"], "--minutes picks versions of the run's network"),
    ],
)
def test_curve_mistakes_are_one_line(tmp_path: Path, ttt_file: Path, write_run, args: list[str], error: str) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 0.0})
    result = CliRunner().invoke(
        main, ["bench", "strength", "--run-dir", str(run_dir), "--positions", str(ttt_file), *args]
    )
    assert result.exit_code != 0 and error in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_curve_needs_a_run(ttt_file: Path) -> None:
    result = CliRunner().invoke(
        main, ["bench", "strength", "--game", "tictactoe", "--positions", str(ttt_file), "--minutes", "10"]
    )
    assert result.exit_code != 0 and "--minutes picks versions of a run: pass its --run-dir" in result.stderr
