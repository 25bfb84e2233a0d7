"""`azjobs bench transport` and `azjobs bench selfplay` end to end (briefly, on tic-tac-toe): each starts a
Redis server and gpu-serve or workers as processes. The last line is one JSON object; no speed is asserted."""

from __future__ import annotations

from benchcli import bench, positive


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
