"""Each version's standing from the run's records, and `net:best`: the most accurate where positions
were scored, else the best rated."""

from __future__ import annotations

from pathlib import Path

import pytest

from azjobs.errors import AzjobsError
from azjobs.eval import records
from azjobs.eval.standing import best_version, standings


def match(run_dir: Path, a: str, b: str, a_wins: int, b_wins: int) -> None:
    records.save(
        None,
        run_dir.name,
        run_dir,
        records.MatchRecord(
            id=f"{a}-{b}",
            time=1.0,
            purpose="schedule",
            a=a,
            b=b,
            a_wins=a_wins,
            draws=0,
            b_wins=b_wins,
            a_first_wins=0,
            a_first_draws=0,
            a_first_losses=0,
            openings=1,
            opening_moves=2,
            seconds=1.0,
            sims=8,
        ),
    )


def scored(run_dir: Path, version: int, sims: int, weak: float, strong: float = 0.5, at: float = 1.0) -> None:
    records.save(
        None,
        run_dir.name,
        run_dir,
        records.AccuracyRecord(
            id=f"{version}-{sims}-{at}",
            time=at,
            player=f"net:{version}",
            sims=sims,
            positions=100,
            weak_accuracy=weak,
            strong_accuracy=strong,
            phases={},
            random_weak_accuracy=0.4,
            seconds=1.0,
        ),
    )


def test_the_best_rated_without_scored_positions(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    for version, wins in ((1, 5), (2, 15), (3, 10)):
        match(run_dir, f"net:{version}", "random", wins, 20 - wins)
    match(run_dir, "net@other:4", "random", 20, 0)  # another run's network is never this run's best
    version, why = best_version(run_dir)
    assert version == 2 and why.startswith("the best rated: ")
    found = standings(run_dir)
    assert sorted(found) == [1, 2, 3] and all(s.rating is not None and not s.accuracy for s in found.values())


def test_the_most_accurate_where_positions_were_scored(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    match(run_dir, "net:3", "random", 19, 1)  # the best rated, but scored less well
    match(run_dir, "net:1", "random", 10, 10)
    scored(run_dir, 1, 100, 0.80)
    scored(run_dir, 1, 0, 0.50)
    scored(run_dir, 3, 100, 0.75)
    scored(run_dir, 3, 0, 0.70)
    scored(run_dir, 2, 0, 0.90)  # three versions scored with 0 simulations, two with 100: 0 decides
    assert best_version(run_dir) == (2, "the most accurate: 90.0% optimal moves with 0 simulations")
    scored(run_dir, 2, 100, 0.70)  # now every version has both: the larger number of simulations decides
    assert best_version(run_dir)[0] == 1
    scored(run_dir, 3, 100, 0.80, strong=0.9, at=2.0)  # a newer score replaces the older; a tie goes to strong
    assert best_version(run_dir)[0] == 3
    standing = standings(run_dir)[3].to_dict()
    assert standing["rating"]["anchor"] == "random = 0" and standing["rating"]["games"] == 20
    assert [(a["sims"], a["weak_accuracy"]) for a in standing["accuracy"]] == [(0, 0.70), (100, 0.80)]


def test_a_run_without_evaluations_has_no_best(tmp_path: Path) -> None:
    with pytest.raises(AzjobsError, match="has no ratings or accuracy yet"):
        best_version(tmp_path / "r")
