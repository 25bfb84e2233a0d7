"""`azjobs bench ...` run end to end (briefly, on tic-tac-toe): the last line is one JSON object with the
figures the README's table quotes. No speed is asserted here; the README records what they measured."""

from __future__ import annotations

import json

from click.testing import CliRunner

from azjobs.cli import main


def bench(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def positive(figures: dict, *names: str) -> None:
    for name in names:
        assert isinstance(figures[name], (int, float)) and figures[name] > 0, (name, figures[name])


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


def test_bench_transport() -> None:
    figures = bench("transport", "--game", "tictactoe", "--seconds", "1.5", "--leaves", "8")
    assert figures["leaves_per_request"] == 8 and figures["clients"] == 1 and figures["batch_size"] == 8
    positive(figures, "worker_cpu_us_per_leaf", "server_cpu_us_per_leaf", "round_trips_per_sec", "leaves_per_sec")
    assert figures["shards"] == 1 and "batch_wall_over_forward" not in figures


def test_bench_transport_with_clients_batches_a_fixed_forward_and_two_shards() -> None:
    figures = bench(
        "transport",
        "--game",
        "tictactoe",
        "--seconds",
        "1.5",
        "--leaves",
        "4",
        "--clients",
        "3",
        "--batch-size",
        "8",
        "--forward-ms",
        "5",
        "--shards",
        "2",
    )
    assert (figures["clients"], figures["batch_size"], figures["forward_ms"], figures["shards"]) == (3, 8, 5.0, 2)
    positive(
        figures,
        "server_cpu_us_per_leaf",
        "redis_cpu_us_per_leaf",
        "leaves_per_sec",
        "ms_per_batch",
        "batch_wall_over_forward",
        "shard0_leaves_per_sec",
        "shard1_leaves_per_sec",
        "redis_core_leaves_per_sec",
    )
    assert 0 < figures["batch_fill"] <= 1


def test_bench_selfplay() -> None:
    figures = bench(
        "selfplay",
        "--game",
        "tictactoe",
        "--seconds",
        "4.5",
        "--warmup",
        "0",
        "--workers",
        "1",
        "--server-threads",
        "1",
        "--precision",
        "fp32",
        "--channels-last",
        "off",
        "--sims",
        "8",
    )
    assert figures["workers"] == 1 and figures["inference_batch_size"] == 32
    positive(
        figures,
        "positions_per_sec",
        "leaf_evals_per_sec",
        "mean_batch_fill",
        "forward_cpu_share",
        "non_nn_cpu_us_per_leaf",
    )
    assert figures["mean_batch_fill"] <= 1 and figures["forward_cpu_share"] < 1
