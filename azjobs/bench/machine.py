"""The machine's speed, recorded beside every strength figure: `azjobs bench net --threads 1`'s measure
at batch 64 (Connect Four's default network, random weights), with the CPU's model and core count.

Machines differ by 2-3x from one session to the next, and strength per hour follows what they compute;
this figure lets curves from different machines be compared.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch

from azjobs.bench import WINDOWS, median
from azjobs.bench.net import forward_rate
from azjobs.games import get_game
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net.model import build_model
from azjobs.run import resolve

SPEED_GAME = "connect4"  # as `azjobs bench net`'s default --game
SPEED_BATCH = 64
SPEED_THREADS = 1
SPEED_SECONDS = 3.0  # the default of `bench strength --machine-seconds`


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` says; "unknown" if nothing)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def measure(seconds: float = SPEED_SECONDS) -> dict[str, Any]:
    """`machine_positions_per_sec`: forward positions/s of one thread at batch 64 (the median of three
    windows over `seconds`; None when `seconds` is 0), and `machine_cpu`, `machine_cores`,
    `machine_precision` (what the runner chose, as `bench net` does)."""
    found: dict[str, Any] = {"machine_positions_per_sec": None, "machine_precision": None}
    if seconds > 0:
        threads = torch.get_num_threads()
        torch.set_num_threads(SPEED_THREADS)
        try:
            found = _forward_speed(seconds)
        finally:
            torch.set_num_threads(threads)
    return {**found, "machine_cpu": cpu_model(), "machine_cores": os.cpu_count()}


def _forward_speed(seconds: float) -> dict[str, Any]:
    settings = resolve(None, {"game": SPEED_GAME}, environ={})  # the game's defaults, as bench net's
    game = get_game(settings.game)
    torch.manual_seed(settings.seed)
    runner = NetRunner(build_model(game, settings), "cpu", settings.inference_batch_size, SPEED_BATCH, RunnerOptions())
    runner.planes[:] = np.random.default_rng(0).integers(0, 2, size=runner.planes.shape, dtype=np.uint8)
    runner.forward(SPEED_BATCH)  # warm-up
    windows = [forward_rate(runner, SPEED_BATCH, seconds / WINDOWS) for _ in range(WINDOWS)]
    return {"machine_positions_per_sec": median(windows, 0), "machine_precision": runner.choice.describe()}
