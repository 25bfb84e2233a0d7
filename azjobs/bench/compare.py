"""`azjobs bench compare`: strength per compute, one training run per search variant for the same minutes
(or the same training steps), each scored on a labelled set.

Each variant is `azjobs run` (in this process) on a fresh run folder with the same game, seed and
budget and the variant's settings: every knob off (plain AlphaZero) but the variant's own, or the
game's defaults for `defaults` (evaluation jobs off, so every worker second goes to self-play), then
`azjobs bench strength --record` on its newest weights: the network alone (0 simulations) and with
search (the run's own search: Gumbel for the Gumbel runs). A variant whose folder already holds
weights is only scored again, unless `retrain`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from azjobs.bench import emit, say
from azjobs.errors import AzjobsError
from azjobs.eval import strength
from azjobs.eval.positions import load_positions
from azjobs.games import get_game
from azjobs.run import resolve
from azjobs.settings import FALSE, FIELD_TYPES, TRUE, SettingsError
from azjobs.storage.weights import WEIGHTS_DIR, versions_in

# Each knob of strength per compute (docs/strength.md) on its own, against the baseline: plain AlphaZero
# (every knob off, whatever the game's defaults say). `defaults` is the game's own settings.
OFF: dict[str, Any] = {
    "gumbel": False,
    "full_search_prob": 1.0,
    "fpu_reduction": 0.0,
    "forced_playouts": 0.0,
    "resign_value": -1.0,
}
KNOBS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "gumbel": {"gumbel": True},
    "gumbel-32": {"gumbel": True, "num_simulations": 32},
    "pcr": {"full_search_prob": 0.25},
    "fpu": {"fpu_reduction": 0.2},
    "forced": {"forced_playouts": 2.0},
    "resign": {"resign_value": -0.9},
    "combined": {"full_search_prob": 0.25, "fpu_reduction": 0.2, "forced_playouts": 2.0, "resign_value": -0.9},
}
VARIANTS: dict[str, dict[str, Any]] = {name: {**OFF, **knobs} for name, knobs in KNOBS.items()} | {"defaults": {}}
COMMON = {"eval_every_versions": 0}
BOOLEANS = TRUE + FALSE  # as the settings spell them: a misspelling is an error, not false
COUNTERS_FILE = "compare_counters.json"  # the run's counters at the end of its training, beside its weights


def parse_pairs(text: str) -> dict[str, str]:
    """`key=value,key=value` as settings flags (names and numbers are checked when the run is resolved)."""
    pairs = (item.partition("=") for item in text.split(",") if item.strip())
    out = {name.strip().replace("-", "_"): value.strip() for name, _, value in pairs}
    for name, value in out.items():
        if FIELD_TYPES.get(name) is bool and value.lower() not in BOOLEANS:
            raise AzjobsError(f"setting {name} is true or false, got {value!r}")
    return out


def variants_of(extra: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The built-in variants and those of `NAME:key=value,...` specs."""
    variants = dict(VARIANTS)
    for spec in extra:
        name, _, pairs = spec.partition(":")
        variants[name.strip()] = parse_pairs(pairs)
    return variants


def run(
    positions: str,
    *,
    minutes: float | None,
    max_steps: int | None = None,
    out_dir: Path,
    game: str,
    sims: int,
    only: list[str],
    extra: Iterable[str] = (),
    common: str = "",
    retrain: bool = False,
) -> list[dict[str, Any]]:
    """Train (or only score) each chosen variant for `minutes` or `max_steps` (whichever ends first); one JSON
    line per variant as it finishes, then a Markdown table for docs/strength.md on stderr. Every setting and
    the labelled set are checked first."""
    budget = budget_text(minutes, max_steps)
    variants = variants_of(extra)
    chosen = only or list(variants)
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise AzjobsError(f"unknown variants {unknown} in --only; known: {', '.join(variants)}")
    load_positions(positions, get_game(game))  # before hours of training
    shared = {"game": game, **COMMON, **parse_pairs(common)}
    for name in chosen:
        try:
            resolve(flags={**shared, **variants[name]})
        except SettingsError as e:
            raise AzjobsError(f"variant {name}: {e}") from None
    rows = []
    for name in chosen:
        flags = {**shared, **variants[name]}
        run_dir = (out_dir / f"{game}-{name}").resolve()
        counters_file = run_dir / COUNTERS_FILE
        if retrain or not versions_in(run_dir / WEIGHTS_DIR) or not counters_file.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            say(f"training {name} for {budget} in {run_dir} ...")
            counters = train(flags, run_dir, minutes, max_steps)
        else:
            counters = json.loads(counters_file.read_text())
        rows.append(
            emit(row(name, flags, counters, score(run_dir, positions, 0), score(run_dir, positions, sims), sims))
        )
    say(markdown(rows, budget))
    return rows


def budget_text(minutes: float | None, max_steps: int | None) -> str:
    """`30 min`, `2000 steps` or `30 min or 2000 steps`."""
    parts = ([] if minutes is None else [f"{minutes:g} min"]) + ([] if max_steps is None else [f"{max_steps} steps"])
    return " or ".join(parts)


def train(flags: dict[str, Any], run_dir: Path, minutes: float | None, max_steps: int | None) -> dict[str, str]:
    """Train one variant in a fresh folder; the run's counters (games, positions, resignations) at the end."""
    from azjobs.cluster import local_mode

    settings = resolve(flags=flags)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        snap = local_mode.run(
            settings, run_dir, minutes=minutes, max_steps=max_steps, console=Console(file=log, width=160)
        )
    counters = dict(snap.stats)
    counters["trainer_step"] = snap.trainer.get("step", "0")
    (run_dir / COUNTERS_FILE).write_text(json.dumps(counters, sort_keys=True))
    return counters


def score(run_dir: Path, positions: str, sims: int) -> dict[str, Any]:
    result = strength.bench(positions, "net", run_dir=run_dir, game=None, sims=sims, record=True).to_dict()
    return {k: result[k] for k in ("weak_accuracy", "strong_accuracy", "weights_version", "seconds")}


def row(
    name: str,
    flags: dict[str, Any],
    counters: dict[str, str],
    alone: dict[str, Any],
    searched: dict[str, Any],
    sims: int,
) -> dict[str, Any]:
    checked = int(counters.get("resign_checked", 0))
    return {
        "variant": name,
        "settings": {
            k: getattr(resolve(flags=flags), k)
            for k in flags
            if k not in COMMON and k != "game" and (k not in OFF or OFF[k] != flags[k])
        },
        "weights_version": alone["weights_version"],
        "training_steps": int(counters.get("trainer_step", 0)),
        "games": int(counters.get("games", 0)),
        "positions": int(counters.get("positions", 0)),
        "weak_net": alone["weak_accuracy"],
        "strong_net": alone["strong_accuracy"],
        "sims": sims,
        "weak_search": searched["weak_accuracy"],
        "strong_search": searched["strong_accuracy"],
        "false_resign_rate": int(counters.get("false_resigns", 0)) / checked if checked else None,
        "resigned_games": int(counters.get("resigned", 0)),
    }


def markdown(rows: list[dict[str, Any]], budget: str) -> str:
    lines = [
        (
            "| variant | settings | version | steps | games | weak, net alone | strong, net alone | "
            "weak, search | strong, search | false resignations |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        settings = ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in r["settings"].items()) or "defaults"
        rate = "" if r["false_resign_rate"] is None else f"{r['false_resign_rate']:.1%}"
        lines.append(
            f"| {r['variant']} | {settings} | {r['weights_version']} | {r['training_steps']:,} | "
            f"{r['games']:,} | {r['weak_net']:.1%} | {r['strong_net']:.1%} | {r['weak_search']:.1%} | "
            f"{r['strong_search']:.1%} | {rate} |"
        )
    lines.append(
        f"\n({budget} of `azjobs run` each; search accuracy with {rows[0]['sims'] if rows else 0} "
        "simulations of the run's own search.)"
    )
    return "\n".join(lines)
