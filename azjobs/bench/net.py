"""`azjobs bench net`: forward passes per second of the run's network at batch sizes 1 to 1024.

The network is the game's default size with random weights, run by the inference server's own
`NetRunner` (so the precision and layout are those gpu-serve would choose, or the ones forced).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from azjobs.bench import WINDOWS, emit, median, say
from azjobs.games import get_game
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net.model import build_model
from azjobs.settings import Settings

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def run(
    settings: Settings, seconds: float, device: str, options: RunnerOptions, batch_sizes: tuple[int, ...] = BATCH_SIZES
) -> dict[str, Any]:
    game = get_game(settings.game)
    torch.manual_seed(settings.seed)
    model = build_model(game, settings)
    # Fixed sizes (graphs, compile) stop at the batch size: here every measured size is one.
    fixed = options.cuda_graphs or options.compile
    batch = max(batch_sizes) if fixed else settings.inference_batch_size
    runner = NetRunner(model, device, batch, max(batch_sizes), options, log=say)
    runner.planes[:] = np.random.default_rng(0).integers(0, 2, size=runner.planes.shape, dtype=np.uint8)
    say(
        f"bench net: {game.name} {settings.net_blocks}x{settings.net_channels} on {device} "
        f"({runner.choice.describe()}, {torch.get_num_threads()} threads), {seconds:.0f} s over {len(batch_sizes)} "
        f"batch sizes"
    )
    per_size = seconds / len(batch_sizes) / WINDOWS
    rates: dict[str, float] = {}
    for size in batch_sizes:
        runner.forward(size)  # warm-up (CUDA graphs, kernels chosen for this shape)
        windows = [forward_rate(runner, size, per_size) for _ in range(WINDOWS)]
        rates[str(size)] = median(windows, 0)
        say(f"  batch {size:5d}: {rates[str(size)]:>10,.0f} positions/s  ({', '.join(f'{w:,.0f}' for w in windows)})")
    return emit(
        {
            "bench": "net",
            "game": game.name,
            "network": f"{settings.net_blocks}x{settings.net_channels}",
            "device": str(runner.device),
            "precision": runner.choice.describe(),
            "threads": torch.get_num_threads(),
            "positions_per_sec": rates,
            "best_batch": max(rates, key=lambda k: rates[k]),
        }
    )


def forward_rate(runner: NetRunner, size: int, seconds: float) -> float:
    """Positions per second of back-to-back forward passes of `size` for about `seconds` (3 passes at least)."""
    passes, started = 0, time.perf_counter()
    while passes < 3 or time.perf_counter() - started < seconds:
        runner.forward(size)
        passes += 1
    return passes * size / (time.perf_counter() - started)
