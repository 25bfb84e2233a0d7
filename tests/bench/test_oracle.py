"""`azjobs bench oracle`: a run's network against solved tic-tac-toe, the newest version or the one within M minutes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from azjobs.cli import main


def oracle(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", "oracle", *args])
    assert result.exit_code == 0, result.output
    [line] = result.stdout.strip().splitlines()
    return json.loads(line)


def test_oracle_scores_every_reachable_position_and_plays_perfect_play(tmp_path: Path, write_run) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, {1: 0.0, 2: 70.0, 3: 200.0})
    out = oracle("--run-dir", str(run_dir), "--sims", "2")
    assert (out["game"], out["weights_version"], out["within_minutes"], out["sims"]) == ("tictactoe", 3, None, 2)
    assert out["positions"] == 4520  # every reachable non-terminal position, each once
    assert 0 < out["optimal"] <= out["positions"]
    assert out["optimal_share"] == round(out["optimal"] / 4520, 4)
    # One line per optimal reply: at least 2 (one game as each side), and no more lost than played.
    assert out["lines_vs_perfect_play"] >= 2 and 0 <= out["games_lost"] <= out["lines_vs_perfect_play"]

    within = oracle("--run-dir", str(run_dir), "--sims", "0", "--minutes", "2")
    assert (within["weights_version"], within["within_minutes"], within["sims"]) == (2, 2.0, 0)


def test_oracle_refuses_what_it_cannot_score(tmp_path: Path, write_run) -> None:
    write_run(tmp_path / "early", {1: 90.0})
    result = CliRunner().invoke(main, ["bench", "oracle", "--run-dir", str(tmp_path / "early"), "--minutes", "1"])
    assert result.exit_code != 0 and "has no weights version published within 1 minutes" in result.stderr
    write_run(tmp_path / "c4", {1: 0.0}, game="connect4")
    result = CliRunner().invoke(main, ["bench", "oracle", "--run-dir", str(tmp_path / "c4")])
    assert result.exit_code != 0 and "plays connect4, which the exact solver cannot solve" in result.stderr
    assert "Traceback" not in result.stderr
