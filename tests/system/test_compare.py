"""`azjobs bench compare` for real on a tiny budget: a variant trained by `azjobs run` for a few steps, scored
on labelled tic-tac-toe positions, then only scored again; the curve and the oracle on the run it left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from labels import labelled_lines

from azjobs.cli import main
from azjobs.storage.weights import versions_in

AZJOBS = [sys.executable, "-m", "azjobs"]
TINY = (
    "net_blocks=1,net_channels=8,num_simulations=8,games_per_job=16,min_replay_positions=100,batch_size=32,"
    "publish_every_steps=10"
)


def compare(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*AZJOBS, "bench", "compare", *args], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_compare_trains_each_variant_then_only_scores_it(tmp_path: Path) -> None:
    positions = tmp_path / "ttt.jsonl"
    positions.write_text("\n".join(labelled_lines(100)) + "\n")
    args = [
        "--game",
        "tictactoe",
        "--positions",
        str(positions),
        "--max-steps",
        "20",
        "--sims",
        "4",
        "--only",
        "mine",
        "--variant",
        "mine:fpu_reduction=0.2",
        "--set",
        TINY,
        "--out",
        str(tmp_path / "out"),
    ]
    first = compare(*args)
    [row] = [json.loads(line) for line in first.stdout.strip().splitlines()]
    assert row["variant"] == "mine" and row["settings"]["fpu_reduction"] == 0.2 and row["sims"] == 4
    assert row["training_steps"] == 20 and row["weights_version"] == 3  # versions at steps 0, 10 and 20
    assert row["games"] >= 16 and row["positions"] >= 100  # training waited for min_replay_positions
    for name in ("weak_net", "strong_net", "weak_search", "strong_search"):
        assert 0 <= row[name] <= 1, name
    assert "training mine for 20 steps" in first.stderr and "| mine | " in first.stderr
    run_dir = tmp_path / "out" / "tictactoe-mine"
    assert versions_in(run_dir / "weights") == [1, 2, 3]

    again = compare(*args)  # the folder holds weights: scored again, not trained
    assert json.loads(again.stdout) == row  # the counters kept from its training, the same scores
    assert "training" not in again.stderr

    # The run it trained, as `bench oracle` and `bench strength --minutes` see it.
    oracle = CliRunner().invoke(main, ["bench", "oracle", "--run-dir", str(run_dir), "--sims", "2"])
    assert oracle.exit_code == 0, oracle.output
    assert json.loads(oracle.stdout)["weights_version"] == 3 and json.loads(oracle.stdout)["positions"] == 4520
    curve = CliRunner().invoke(
        main,
        [
            "bench",
            "strength",
            "--run-dir",
            str(run_dir),
            "--positions",
            str(positions),
            "--minutes",
            "0,30",
            "--sims",
            "0",
        ],
    )
    assert curve.exit_code == 0, curve.output
    points = [json.loads(line) for line in curve.stdout.strip().splitlines()]
    assert [(p["minutes"], p["weights_version"]) for p in points] == [(0.0, 1), (30.0, 3)]


def test_compare_mistakes_stop_before_any_training(tmp_path: Path) -> None:
    positions = tmp_path / "ttt.jsonl"
    positions.write_text("\n".join(labelled_lines(10)) + "\n")
    for extra, error in (
        (["--only", "nope"], "unknown variants ['nope'] in --only"),
        (["--set", "gumbel=ture"], "setting gumbel is true or false, got 'ture'"),
        (["--variant", "x:fpu_reduction=-3", "--only", "x"], "variant x:"),
    ):
        result = CliRunner().invoke(
            main,
            [
                "bench",
                "compare",
                "--game",
                "tictactoe",
                "--positions",
                str(positions),
                "--out",
                str(tmp_path / "out"),
                *extra,
            ],
        )
        assert result.exit_code != 0 and error in result.stderr, (extra, result.output)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
