"""`azjobs bench`: throughput benchmarks, each ending in one JSON line (docs/benchmarks.md's tables come from them),
and measures of strength (strength, oracle, compare: JSON lines; docs/strength.md's tables).

Every throughput benchmark measures in three windows and reports the median (the spread in `windows`), so a
busy machine shows as spread rather than as a wrong number; CPU figures come from process CPU time.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from azjobs.run import Run
    from azjobs.settings import Settings

WINDOWS = 3  # measurement windows per benchmark; the median is reported


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> dict[str, Any]:
    """Print the result as the last line of stdout."""
    print(json.dumps(result), flush=True)
    return result


def median(values: list[float], digits: int = 2) -> float:
    return round(float(statistics.median(values)), digits)


def medians(windows: list[dict[str, float]], digits: Callable[[str], int] = lambda key: 2) -> dict[str, float]:
    """The median of each figure over the windows."""
    return {key: median([w[key] for w in windows], digits(key)) for key in windows[0]}


def create_run(run: Run, settings: Settings) -> None:
    """A benchmark run, no trainer: created with `settings`, and as version 1 the game's network with random
    weights (from `settings.seed`)."""
    import torch

    from azjobs.games import get_game
    from azjobs.net import build_model, to_bytes
    from azjobs.storage.weights import WeightStore

    assert run.folder is not None, "a benchmark run is created on its folder"
    run.create(settings)
    game = get_game(settings.game)
    torch.manual_seed(settings.seed)
    data = to_bytes(build_model(game, settings), {"version": 1, "game": game.name})
    WeightStore(run.redis, run.name, run.folder).publish(1, data)
