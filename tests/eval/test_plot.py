"""`azjobs plot`: the run's ratings and accuracy curves as a PNG, from the storage root alone."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.eval import plot, records
from azjobs.eval.match import MatchRecord


def record_run(client: redis.Redis, run_dir: Path) -> None:
    """Three evaluated versions, each stronger, with accuracy with and without search."""
    previous = "random"
    for i, version in enumerate((1, 11, 21)):
        info = {"version": version, "step": 50 * (version - 1), "train_seconds": 60.0 * (version - 1)}
        if version > 1:  # version 1's weights are older than the positions and games made they carry now
            info.update(positions_made=1_000 * version, games_made=100 * version)
        name = f"net:{version}"
        for opponent, wins in (("random", 5 + 2 * i), (previous, 6)):
            if opponent == name:
                continue
            records.save(
                client,
                "p",
                run_dir,
                MatchRecord(
                    id=f"{name}-{opponent}",
                    time=float(version),
                    purpose="schedule",
                    a=name,
                    b=opponent,
                    a_wins=wins,
                    draws=1,
                    b_wins=9 - wins,
                    a_first_wins=0,
                    a_first_draws=0,
                    a_first_losses=0,
                    openings=5,
                    opening_moves=2,
                    seconds=1.0,
                    sims=8,
                    versions={name: info},
                ),
            )
        for sims in (8, 0):
            records.save(
                client,
                "p",
                run_dir,
                records.AccuracyRecord(
                    id=f"{name}-{sims}",
                    time=float(version),
                    player=name,
                    sims=sims,
                    positions=50,
                    weak_accuracy=0.5 + 0.1 * i + 0.01 * sims,
                    strong_accuracy=0.4 + 0.1 * i,
                    phases={},
                    random_weak_accuracy=0.42,
                    seconds=1.0,
                    version=info,
                ),
            )
        previous = name


def test_plot_from_the_storage_root(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "p"
    record_run(redis_client, run_dir)
    result = CliRunner().invoke(main, ["plot", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    png = run_dir / "evals" / "strength.png"
    assert out["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(out["ratings"]) == {"random", "net:1", "net:11", "net:21"}
    assert out["ratings"]["random"]["elo"] == 0
    assert [(a["sims"], a["step"], round(a["weak_accuracy"], 4)) for a in out["accuracy"]] == [
        (0, 0, 0.5),
        (0, 500, 0.6),
        (0, 1000, 0.7),
        (8, 0, 0.58),
        (8, 500, 0.68),
        (8, 1000, 0.78),
    ]
    assert [(a["sims"], a["positions_made"], a["games_made"]) for a in out["accuracy"][:3]] == [
        (0, None, None),
        (0, 11_000, 1_100),
        (0, 21_000, 2_100),
    ]
    elsewhere = tmp_path / "elsewhere.png"
    assert CliRunner().invoke(main, ["plot", "--run-dir", str(run_dir), "--out", str(elsewhere)]).exit_code == 0
    assert elsewhere.read_bytes()[:4] == b"\x89PNG"


def test_the_positions_panel_draws_what_the_weights_metadata_says(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "p"
    record_run(redis_client, run_dir)
    summary = plot.summarize(run_dir)
    # Against positions made: the versions whose metadata carries it (not version 1), by positions.
    points = plot.accuracy_points(summary, "positions_made")
    rounded = {sims: [tuple(round(v, 4) for v in row) for row in rows] for sims, rows in points.items()}
    assert rounded == {8: [(11_000, 0.68, 0.5), (21_000, 0.78, 0.6)], 0: [(11_000, 0.6, 0.5), (21_000, 0.7, 0.6)]}
    assert [x for x, _, _ in plot.rating_points(summary, "positions_made")] == [11_000, 21_000]
    assert [x for x, _, _ in plot.rating_points(summary, "train_seconds", 1 / 60)] == [0, 10, 20]
    assert [key for key, _, _ in plot.AXES] == ["train_seconds", "step", "positions_made"]


def test_plot_without_results(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plot", "--run-dir", str(tmp_path / "none")])
    assert result.exit_code != 0 and "has no evaluation results yet" in result.stderr
