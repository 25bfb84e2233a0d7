"""`azjobs bench soak`, short: every request answered once, to its sender, with the right values;
latency percentiles and the memory of every process reported."""

from __future__ import annotations

import json
import subprocess
import sys


def test_short_soak() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "azjobs",
            "bench",
            "soak",
            "--seconds",
            "4",
            "--workers",
            "3",
            "--games",
            "8",
            "--game",
            "tictactoe",
            "--net-blocks",
            "1",
            "--net-channels",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answered"] == report["requests"] > 0
    assert report["lost"] == report["wrong"] == report["duplicates"] == report["server_dropped"] == 0
    assert set(report["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max", "mean"}
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert set(report["rss_mb"]) == {"gpu-serve", "redis", "client-1", "client-2", "client-3"}
    for figures in report["rss_mb"].values():
        assert figures["start"] > 0 and figures["end"] > 0
    assert "requests answered, 0 lost, 0 wrong, 0 duplicated" in done.stderr
