"""`azjobs bench search`: self-play search with a uniform evaluator (no network): simulations per CPU second.

The same work a self-play job does between requests, the groups and slots of a job included: two
groups of `games_in_flight` games, subtree reuse, moves, refills. Only the network is replaced by
zero logits and values, so what is left is the search's own cost.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from azjobs.bench import WINDOWS, emit, median, say
from azjobs.games import get_game
from azjobs.jobs.configs import selfplay_config
from azjobs.search.selfplay import GROUPS_IN_FLIGHT, GameBudget, SelfPlay
from azjobs.settings import Settings


def run(settings: Settings, seconds: float, changed: list[str] | None = None) -> dict[str, Any]:
    """Measure; `changed` names the settings given on the command line, which the JSON line repeats."""
    game = get_game(settings.game)
    zeros_logits = np.zeros((settings.games_in_flight, game.num_actions), np.float32)
    zeros_values = np.zeros(settings.games_in_flight, np.float32)
    budget = GameBudget(10**12)  # slots refill forever; the time decides
    rng = np.random.default_rng(settings.seed)
    slots = np.array_split(np.arange(settings.games_in_flight), GROUPS_IN_FLIGHT)
    config = selfplay_config(settings)
    groups = [SelfPlay(game, config, budget, len(s), rng) for s in slots if len(s)]
    buffers = [np.empty((len(s), *game.planes_shape), np.uint8) for s in slots]

    def step(i: int) -> int:
        group = groups[i]
        k = group.pending_count
        group.write_pending(buffers[i])  # encoded like a request's planes, then answered by "the network"
        group.apply(zeros_logits[:k], zeros_values[:k])
        return k

    say(
        f"bench search: {game.name}, {settings.games_in_flight} games in flight, "
        f"{settings.num_simulations} simulations per move, {WINDOWS} windows of {seconds / WINDOWS:.1f} s"
    )
    for _ in range(20):  # compiled code loaded, trees past their first moves
        for i in range(len(groups)):
            step(i)
    windows = [_window(groups, step, seconds / WINDOWS) for _ in range(WINDOWS)]
    for w in windows:
        say(
            f"  {w['sims_per_sec_per_core']:,.0f} simulations/s per core, {w['us_per_sim']:.2f} us each, "
            f"{w['leaf_evals_per_cpu_s']:,.0f} leaves/s, {w['positions_per_cpu_s']:,.0f} moves/s"
        )
    result = {
        "bench": "search",
        "game": game.name,
        "games_in_flight": settings.games_in_flight,
        "num_simulations": settings.num_simulations,
        "reuse_tree": settings.reuse_tree,
        "settings": {name: getattr(settings, name) for name in changed or []},
        "sims_per_sec_per_core": median([w["sims_per_sec_per_core"] for w in windows], 0),
        "us_per_sim": median([w["us_per_sim"] for w in windows], 3),
        "leaf_evals_per_cpu_s": median([w["leaf_evals_per_cpu_s"] for w in windows], 0),
        "positions_per_cpu_s": median([w["positions_per_cpu_s"] for w in windows], 0),
        "windows": [round(w["sims_per_sec_per_core"]) for w in windows],
    }
    return emit(result)


def _window(groups: list[SelfPlay], step: Callable[[int], int], seconds: float) -> dict[str, float]:
    sims0 = sum(g.search.simulations for g in groups)
    moves0 = sum(g.positions for g in groups)
    leaves = 0
    wall_end = time.monotonic() + seconds
    cpu0 = time.process_time()
    while time.monotonic() < wall_end:
        for i in range(len(groups)):
            leaves += step(i)
    cpu = max(time.process_time() - cpu0, 1e-9)
    sims = sum(g.search.simulations for g in groups) - sims0
    return {
        "sims_per_sec_per_core": sims / cpu,
        "us_per_sim": 1e6 * cpu / max(sims, 1),
        "leaf_evals_per_cpu_s": leaves / cpu,
        "positions_per_cpu_s": (sum(g.positions for g in groups) - moves0) / cpu,
    }
