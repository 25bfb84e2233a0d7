"""`azjobs bench ...` run end to end (briefly, on tic-tac-toe): the last line is one JSON object with the
figures the README's table quotes. No speed is asserted here; the README records what they measured."""

from __future__ import annotations

from benchcli import bench, positive
from click.testing import CliRunner

from azjobs.cli import main


def test_bench_search() -> None:
    figures = bench("search", "--game", "tictactoe", "--seconds", "1.5", "--games-in-flight", "16")
    assert figures["bench"] == "search" and figures["game"] == "tictactoe" and figures["games_in_flight"] == 16
    positive(figures, "sims_per_sec_per_core", "us_per_sim", "leaf_evals_per_cpu_s", "positions_per_cpu_s")
    assert len(figures["windows"]) == 3 and figures["settings"] == {}


def test_bench_search_with_other_settings() -> None:
    figures = bench(
        "search",
        "--game",
        "tictactoe",
        "--seconds",
        "1.5",
        "--games-in-flight",
        "16",
        "--set",
        "gumbel=true",
        "--set",
        "full-search-prob=0.25",
    )
    assert figures["settings"] == {"full_search_prob": 0.25, "gumbel": True}
    positive(figures, "sims_per_sec_per_core")
    result = CliRunner().invoke(main, ["bench", "search", "--set", "gumble=true"])
    assert result.exit_code != 0 and "unknown setting 'gumble'" in result.output


def test_bench_net() -> None:
    figures = bench(
        "net",
        "--game",
        "tictactoe",
        "--seconds",
        "1",
        "--batch-sizes",
        "1,8",
        "--precision",
        "fp32",
        "--channels-last",
        "off",
    )
    assert figures["device"] == "cpu" and figures["precision"] == "fp32" and figures["network"] == "2x32"
    assert set(figures["positions_per_sec"]) == {"1", "8"}
    positive(figures["positions_per_sec"], "1", "8")
