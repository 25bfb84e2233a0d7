"""`azjobs bench compare`: strength per compute, one training run per variant (and seed) for the same
minutes (or the same training steps), each scored on a labelled set.

Each variant is `azjobs run` (in this process) on a fresh run folder with the same game, seed and
budget and the variant's settings, then `azjobs bench strength --record` on its newest weights: the
network alone (0 simulations) and with search (the run's own search: Gumbel for the Gumbel runs).
Evaluation jobs are off, so every worker second goes to self-play. A variant whose folder already
holds weights is only scored again, unless `retrain`; so a comparison stopped part way goes on where
it stopped.

Two families of variants: the search variants, each one knob on plain AlphaZero (every knob off,
whatever the game's defaults say), and the ablation (`--only ablation`): the game's defaults, and
each training technique of docs/training.md on top of them, KataGo's way of measuring what each
one adds. With several seeds the table gives each variant's mean over its seeds and the
difference from the first variant's mean.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
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
# Each training technique (docs/training.md) on top of the game's defaults, at the value its sources used
# (the Kiel thesis, Oracle's "Lessons from AlphaZero", KataGo, minizero, Leela Zero), sized for Connect
# Four's 30 minutes on 2 cores (400,000-700,000 positions and 5,000-12,000 steps, by machine).
TECHNIQUES: dict[str, dict[str, Any]] = {
    "q": {"value_target_q_weight": 0.5},  # Oracle: the mean of z and q
    "merge": {"merge_duplicates": 0.8},  # the thesis' weight
    "soft": {"soft_policy_weight": 1.0},  # KataGo's temperature 4, on the shared head
    "surprise": {"policy_surprise_weight": 0.5},  # KataGo's share
    "cyclic": {"learning_rate_cycle": "cyclic"},  # 2000-step triangles up to 5x
    "one-cycle": {"learning_rate_cycle": "one_cycle"},
    "prog-sims": {"simulations_start": 25, "simulations_ramp_positions": 300_000},
    "ema": {"ema_decay": 0.998},  # about the last 500 steps (10 versions)
    "grow": {"net_blocks": 2, "net_channels": 32, "net_grow_schedule": "100000:3x48,300000:4x64"},
    "window": {"replay_window_min_rows": 50_000},  # KataGo's growing window: 118,000 rows at 300,000 positions
    "no-pcr": {"full_search_prob": 1.0},  # the thesis' counter-finding: playout cap randomization hurt
}
VARIANTS: dict[str, dict[str, Any]] = (
    {name: {**OFF, **knobs} for name, knobs in KNOBS.items()} | {"defaults": {}} | TECHNIQUES
)
GROUPS = {"ablation": ["defaults", *TECHNIQUES]}  # names that --only expands
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


def chosen_variants(only: list[str], variants: dict[str, dict[str, Any]]) -> list[str]:
    """The names of --only, groups expanded, each once in order (default: every variant)."""
    names = [n for item in only or list(variants) for n in GROUPS.get(item, [item])]
    unknown = [v for v in names if v not in variants]
    if unknown:
        raise AzjobsError(f"unknown variants {unknown} in --only; known: {', '.join([*variants, *GROUPS])}")
    return list(dict.fromkeys(names))


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
    seeds: list[int] | None = None,
    retrain: bool = False,
) -> list[dict[str, Any]]:
    """Train (or only score) each chosen variant for `minutes` or `max_steps` (whichever ends first), with
    each of `seeds` (seed by seed, so that each seed's variants run close in time); one JSON line per run
    as it finishes, then a Markdown table for docs/strength.md on stderr. Every setting and the labelled
    set are checked first."""
    budget = Budget(minutes, max_steps)
    variants = variants_of(extra)
    chosen = chosen_variants(only, variants)
    load_positions(positions, get_game(game))  # before hours of training
    shared = {"game": game, **COMMON, **parse_pairs(common)}
    for name in chosen:
        try:
            resolve(flags={**shared, **variants[name]})
        except SettingsError as e:
            raise AzjobsError(f"variant {name}: {e}") from None
    rows = []
    each_seed: list[int | None] = [*dict.fromkeys(seeds)] if seeds else [None]
    for seed in each_seed:
        for name in chosen:
            flags = {**shared, **variants[name]} | ({} if seed is None else {"seed": seed})
            folder = f"{game}-{name}" if seed is None else f"{game}-{name}-seed{seed}"
            run_dir = (out_dir / folder).resolve()
            rows.append(emit(train_and_score(name, flags, run_dir, budget, positions, sims, retrain)))
    say(markdown(rows, budget))
    return rows


def train_and_score(
    name: str, flags: dict[str, Any], run_dir: Path, budget: Budget, positions: str, sims: int, retrain: bool
) -> dict[str, Any]:
    """One variant's row: trained into `run_dir` unless it holds a finished training already, then scored."""
    counters_file = run_dir / COUNTERS_FILE
    if retrain or not versions_in(run_dir / WEIGHTS_DIR) or not counters_file.exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        say(f"training {name} for {budget} in {run_dir} ...")
        counters = train(flags, run_dir, budget)
    else:
        counters = json.loads(counters_file.read_text())
    return row(name, flags, counters, score(run_dir, positions, 0), score(run_dir, positions, sims), sims)


@dataclass(frozen=True)
class Budget:
    """Each variant's training: minutes of `azjobs run`, training steps, or whichever ends first."""

    minutes: float | None
    max_steps: int | None

    def __str__(self) -> str:
        """`30 min`, `2000 steps` or `30 min or 2000 steps`."""
        parts = [] if self.minutes is None else [f"{self.minutes:g} min"]
        return " or ".join(parts + ([] if self.max_steps is None else [f"{self.max_steps} steps"]))


def train(flags: dict[str, Any], run_dir: Path, budget: Budget) -> dict[str, str]:
    """Train one variant in a fresh folder; the run's counters (games, positions, resignations) at the end."""
    from azjobs.cluster import local_mode

    settings = resolve(flags=flags)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        snap = local_mode.run(
            settings, run_dir, minutes=budget.minutes, max_steps=budget.max_steps, console=Console(file=log, width=160)
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
    settings = resolve(flags=flags)
    return {
        "variant": name,
        "seed": settings.seed,
        "settings": {
            k: getattr(settings, k)
            for k in flags
            if k not in COMMON and k not in ("game", "seed") and (k not in OFF or OFF[k] != flags[k])
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


def markdown(rows: list[dict[str, Any]], budget: Budget) -> str:
    """The table of every run; with several seeds, then each variant's means over its seeds."""
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
    if len({r["seed"] for r in rows}) > 1:
        lines += ["", means_table(rows)]
    return "\n".join(lines)


def means_table(rows: list[dict[str, Any]]) -> str:
    """KataGo's ablation table: each variant's mean weak accuracy over its seeds (each seed's in brackets),
    and its difference from the first variant's mean (the reference, `defaults` in the ablation)."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)

    def mean(runs: list[dict[str, Any]], key: str) -> float:
        return sum(r[key] for r in runs) / len(runs)

    reference = next(iter(by_variant.values()))
    lines = [
        "| variant | settings | seeds | games | weak, net alone | change | weak, search | change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in by_variant.items():
        settings = ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in runs[0]["settings"].items()) or "defaults"
        cells = [name, settings, ", ".join(str(r["seed"]) for r in runs), f"{mean(runs, 'games'):,.0f}"]
        for key in ("weak_net", "weak_search"):
            each = " / ".join(f"{r[key]:.1%}" for r in runs)
            change = 100 * (mean(runs, key) - mean(reference, key))
            cells += [f"{mean(runs, key):.1%} ({each})", "" if runs is reference else f"{change:+.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
