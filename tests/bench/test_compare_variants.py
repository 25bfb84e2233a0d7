"""`azjobs bench compare`'s variants and seeds without training: the ablation's techniques each change
what they name from Connect Four's defaults, `--only ablation` expands, and runs already trained (one
folder per seed) are only scored, into a table with each variant's means and its change from the first."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from labels import labelled_lines

from azjobs.bench import compare
from azjobs.cli import main
from azjobs.errors import AzjobsError
from azjobs.run import resolve


def test_each_technique_changes_what_it_names_from_the_game_defaults() -> None:
    defaults = resolve(flags={"game": "connect4"})
    assert compare.GROUPS["ablation"][0] == "defaults" and compare.VARIANTS["defaults"] == {}
    for name in compare.GROUPS["ablation"][1:]:
        knobs = compare.VARIANTS[name]
        settings = resolve(flags={"game": "connect4", **knobs})  # each is a valid run
        assert all(getattr(settings, k) == v for k, v in knobs.items()), name
        assert any(getattr(defaults, k) != v for k, v in knobs.items()), name
        others = [f.name for f in dataclasses.fields(defaults) if f.name not in knobs]
        assert all(getattr(settings, k) == getattr(defaults, k) for k in others), name  # the rest stays


def test_only_expands_groups_once_each_in_order() -> None:
    variants = compare.variants_of(["mine:fpu_reduction=0.1"])
    assert compare.chosen_variants(["mine", "ablation", "q"], variants) == ["mine", *compare.GROUPS["ablation"]]
    assert compare.chosen_variants([], variants) == list(variants)
    with pytest.raises(AzjobsError, match=r"unknown variants \['nope'\].*ablation"):
        compare.chosen_variants(["nope"], variants)


def trained(write_run: Callable[..., object], run_dir: Path, games: int) -> None:
    """A folder as a finished training leaves it: weights versions and the counters at its end."""
    write_run(run_dir, {1: 0.0, 2: 60.0})
    counters = {"trainer_step": "50", "games": str(games), "positions": str(9 * games)}
    (run_dir / compare.COUNTERS_FILE).write_text(json.dumps(counters))


def test_seeds_score_one_folder_each_and_the_table_gives_the_means(
    tmp_path: Path, write_run: Callable[..., object]
) -> None:
    positions = tmp_path / "ttt.jsonl"
    positions.write_text("\n".join(labelled_lines(30)) + "\n")
    out = tmp_path / "out"
    for seed, games in ((3, 100), (4, 300)):
        trained(write_run, out / f"tictactoe-a-seed{seed}", games)
        trained(write_run, out / f"tictactoe-b-seed{seed}", games + 1)
    args = ["bench", "compare", "--game", "tictactoe", "--positions", str(positions), "--sims", "2"]
    result = CliRunner().invoke(
        main,
        [*args, "--out", str(out), "--only", "a,b", "--variant", "a:", "--variant", "b:fpu_reduction=0.3"]
        + ["--seeds", "3,4"],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(r["variant"], r["seed"], r["games"]) for r in rows] == [
        ("a", 3, 100),
        ("b", 3, 101),
        ("a", 4, 300),
        ("b", 4, 301),
    ]
    assert rows[1]["settings"] == {"fpu_reduction": 0.3} and rows[0]["settings"] == {}  # the seed is its own field
    assert "training" not in result.stderr  # every folder held a finished training: only scored
    means = {line.split(" | ")[0][2:]: line.split(" | ") for line in result.stderr.splitlines() if "| 3, 4 |" in line}
    weak = [r["weak_net"] for r in rows]
    assert means["a"][3] == "200" and means["b"][3] == "201"  # mean games over the seeds
    assert means["a"][4] == f"{(weak[0] + weak[2]) / 2:.1%} ({weak[0]:.1%} / {weak[2]:.1%})"
    change = 100 * ((weak[1] + weak[3]) / 2 - (weak[0] + weak[2]) / 2)
    assert means["a"][5] == "" and means["b"][5] == f"{change:+.1f}"

    for bad in ("1,x", "-1"):
        refused = CliRunner().invoke(main, [*args, "--out", str(out), "--seeds", bad])
        assert refused.exit_code != 0 and "--seeds" in refused.output and "Traceback" not in refused.output
