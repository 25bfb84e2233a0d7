"""`azjobs bench strength --minutes` and `--at-positions`: a strength curve, the newest version within each
mark of training minutes or positions made, scored with each simulation count, one JSON line each with
what the run had made and the machine's speed (scoring one player: tests/eval/test_strength.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
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


def bench(run_dir: Path, ttt_file: Path, *args: str, machine_seconds: str = "0") -> Result:
    """`azjobs bench strength` on the run, without measuring the machine unless asked."""
    command = ["bench", "strength", "--run-dir", str(run_dir), "--positions", str(ttt_file), *args]
    return CliRunner().invoke(main, [*command, "--machine-seconds", machine_seconds])


MACHINE_UNMEASURED = {"machine_positions_per_sec": None, "machine_precision": None}


def test_the_curve_scores_the_newest_version_within_each_mark(tmp_path: Path, ttt_file: Path, write_run) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 30.0, 2: 90.0, 3: 200.0})  # published after 0.5, 1.5 and 3.33 minutes of training
    result = bench(run_dir, ttt_file, "--minutes", "0.25,1,2,4", "--sims", "2", "--sims", "0", "--record")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert {k: v for k, v in lines[0].items() if not k.startswith("machine_")} == {
        "minutes": 0.25,
        "error": "no version published by then",
    }
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
        assert point["positions_made"] is None and point["games_made"] is None  # weights from before they were kept
        assert {k: point[k] for k in MACHINE_UNMEASURED} == MACHINE_UNMEASURED  # --machine-seconds 0
    kept = records.read_files(run_dir, records.AccuracyRecord)  # where `azjobs plot` finds them
    assert sorted((k.version["version"], k.sims) for k in kept) == [(1, 0), (1, 2), (2, 0), (2, 2), (3, 0), (3, 2)]
    assert "within 4 min of training: net:3, published at 3.3 min" in result.stderr


def test_without_minutes_one_line_per_simulation_count(tmp_path: Path, ttt_file: Path, write_run) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 0.0, 2: 60.0})
    result = bench(run_dir, ttt_file, "--sims", "3", "--sims", "0")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [(p["weights_version"], p["sims"], p["train_minutes"], p["step"]) for p in lines] == [
        (2, 3, 1, 50),
        (2, 0, 1, 50),
    ]
    assert "minutes" not in lines[0]


@pytest.mark.parametrize(
    "args, error",
    [
        (["--minutes", "10,x"], "'x' is not a number of minutes"),
        (["--minutes", "10", "--player", "random"], "--minutes picks versions of the run's network"),
        (["--at-positions", "10k,2.5x"], "'2.5x' is not a number of positions"),
        (["--at-positions", "1.5"], "'1.5' is not a number of positions"),
        (["--at-positions", "10", "--player", "random"], "--at-positions picks versions of the run's network"),
        (["--at-positions", "10", "--minutes", "10"], "--minutes and --at-positions each make a curve"),
    ],
)
def test_curve_mistakes_are_one_line(tmp_path: Path, ttt_file: Path, write_run, args: list[str], error: str) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 0.0})
    result = bench(run_dir, ttt_file, *args)
    assert result.exit_code != 0 and error in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_curve_needs_a_run(ttt_file: Path) -> None:
    result = CliRunner().invoke(
        main, ["bench", "strength", "--game", "tictactoe", "--positions", str(ttt_file), "--minutes", "10"]
    )
    assert result.exit_code != 0 and "--minutes picks versions of a run: pass its --run-dir" in result.stderr


def test_the_curve_by_positions_made_carries_the_machines_speed(tmp_path: Path, ttt_file: Path, write_run) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 30.0, 2: 90.0, 3: 200.0}, positions_made={1: 0, 2: 5_000, 3: 20_000})
    result = bench(run_dir, ttt_file, "--at-positions", "4k,5000,1M", "--sims", "0", machine_seconds="0.3")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    picked = [
        (p["at_positions"], p["weights_version"], p["positions_made"], p["games_made"], p["train_minutes"])
        for p in lines
    ]
    assert picked == [(4_000, 1, 0, 0, 0.5), (5_000, 2, 5_000, 500, 1.5), (1_000_000, 3, 20_000, 2_000, 3.3)]
    speeds = {p["machine_positions_per_sec"] for p in lines}
    assert len(speeds) == 1 and speeds.pop() > 0  # measured once, on every line
    for point in lines:
        assert isinstance(point["machine_cpu"], str) and point["machine_cpu"]
        assert point["machine_cores"] >= 1 and point["machine_precision"]
    assert "by 5,000 positions made: net:2, published at 1.5 min, 5,000 positions and 500 games made" in result.stderr


def test_positions_marks_before_the_first_version_or_on_old_weights(tmp_path: Path, ttt_file: Path, write_run) -> None:
    newer, older = tmp_path / "newer", tmp_path / "older"
    write_run(newer, {1: 30.0, 2: 90.0}, positions_made={1: 100, 2: 900})
    write_run(older, {1: 30.0, 2: 90.0})  # weights without positions_made
    early = json_lines(bench(newer, ttt_file, "--at-positions", "99,100", "--sims", "0").stdout)
    assert [p.get("error") or p["weights_version"] for p in early] == ["no version published by then", 1]
    result = bench(older, ttt_file, "--at-positions", "1M", "--sims", "0")
    assert result.exit_code == 0 and json_lines(result.stdout)[0]["error"] == "no version published by then"
    assert "no version's weights carry positions_made" in result.stderr and "use --minutes" in result.stderr


def test_the_version_picked_by_each_kind_of_mark(tmp_path: Path, write_run) -> None:
    write_run(tmp_path, {1: 0.0, 2: 60.0, 3: 120.0}, positions_made={1: 0, 2: 500, 3: 800})
    versions = records.published(tmp_path)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[1] == {"version": 2, "step": 50, "train_seconds": 60.0, "positions_made": 500, "games_made": 50}
    assert records.newest_within(versions, "train_seconds", 90.0)["version"] == 2
    assert records.newest_within(versions, "positions_made", 799)["version"] == 2
    assert records.newest_within(versions, "positions_made", 800)["version"] == 3
    assert records.newest_within([{"version": 1}], "positions_made", 10**9) is None
