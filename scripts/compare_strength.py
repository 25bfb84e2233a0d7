"""Strength per compute: one training run per search variant for the same minutes, each scored on a labelled set.

    python scripts/compare_strength.py --positions connect4 --minutes 30 --out runs/compare

Each variant is `azjobs run` (azjobs.cluster.local_mode.run, in this process) on a fresh run folder with the
same game, seed and minutes and the variant's settings: every knob off (plain AlphaZero) but
the variant's own, or the game's defaults for `defaults` (evaluation jobs off, so every worker
second goes to self-play), then `azjobs bench strength --record` on its newest weights: the
network alone (`--sims 0`) and with search (`--sims N`, the run's own search: Gumbel for the
Gumbel runs). Prints one JSON line per variant as it finishes, then a Markdown table for
docs/strength.md. A variant whose folder already holds weights is only scored again (`--retrain` trains
it afresh). `--variant NAME:key=value,...` adds a variant (e.g. the best combination once the
single knobs are measured); `--only a,b` runs a subset; `--set key=value` changes every run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from azjobs.cluster import local_mode
from azjobs.errors import AzjobsError
from azjobs.eval import strength
from azjobs.eval.positions import load_positions
from azjobs.games import get_game
from azjobs.settings import FALSE, FIELD_TYPES, TRUE, SettingsError, resolve
from azjobs.storage.weights import WEIGHTS_DIR, versions_in

# Each knob of strength per compute (docs/strength.md) on its own, against the baseline: plain AlphaZero
# (every knob off, whatever the game's defaults say). `defaults` is the game's own settings.
OFF: dict[str, Any] = {"gumbel": False, "full_search_prob": 1.0, "fpu_reduction": 0.0, "forced_playouts": 0.0,
                       "resign_value": -1.0}
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


def parse_pairs(text: str) -> dict[str, str]:
    """`key=value,key=value` as settings flags (names and numbers are checked when the run is resolved)."""
    pairs = (item.partition("=") for item in text.split(",") if item.strip())
    out = {name.strip().replace("-", "_"): value.strip() for name, _, value in pairs}
    for name, value in out.items():
        if FIELD_TYPES.get(name) is bool and value.lower() not in BOOLEANS:
            raise click.BadParameter(f"setting {name} is true or false, got {value!r}")
    return out


def train(name: str, flags: dict[str, Any], run_dir: Path, minutes: float) -> dict[str, str]:
    """Train one variant in a fresh folder; the run's counters (games, positions, resignations) at the end."""
    settings = resolve(flags=flags)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        snap = local_mode.run(settings, run_dir, minutes=minutes, console=Console(file=log, width=160))
    counters = dict(snap.stats)
    counters["trainer_step"] = snap.trainer.get("step", "0")
    (run_dir / "compare_counters.json").write_text(json.dumps(counters, sort_keys=True))
    return counters


def score(run_dir: Path, positions: str, sims: int) -> dict[str, Any]:
    result = strength.bench(positions, "net", run_dir=run_dir, game=None, sims=sims, record=True).to_dict()
    return {k: result[k] for k in ("weak_accuracy", "strong_accuracy", "weights_version", "seconds")}


def row(name: str, flags: dict[str, Any], counters: dict[str, str], alone: dict[str, Any],
        searched: dict[str, Any], sims: int) -> dict[str, Any]:
    checked = int(counters.get("resign_checked", 0))
    return {
        "variant": name,
        "settings": {k: getattr(resolve(flags=flags), k) for k in flags
                     if k not in COMMON and k != "game" and (k not in OFF or OFF[k] != flags[k])},
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


def markdown(rows: list[dict[str, Any]], minutes: float) -> str:
    lines = ["| variant | settings | version | steps | games | weak, net alone | strong, net alone | "
             "weak, search | strong, search | false resignations |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        settings = ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in r["settings"].items()) or "defaults"
        rate = "" if r["false_resign_rate"] is None else f"{r['false_resign_rate']:.1%}"
        lines.append(f"| {r['variant']} | {settings} | {r['weights_version']} | {r['training_steps']:,} | "
                     f"{r['games']:,} | {r['weak_net']:.1%} | {r['strong_net']:.1%} | {r['weak_search']:.1%} | "
                     f"{r['strong_search']:.1%} | {rate} |")
    lines.append(f"\n({minutes:g} minutes of `azjobs run` each; search accuracy with {rows[0]['sims'] if rows else 0} "
                 "simulations of the run's own search.)")
    return "\n".join(lines)


@click.command()
@click.option("--positions", required=True, metavar="NAME|FILE",
              help="Labelled positions: a bundled set (connect4) or a JSON-lines file.")
@click.option("--minutes", default=30.0, show_default=True, help="Training minutes of each variant.")
@click.option("--out", "out_dir", default=Path("runs/compare"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder of the variants' runs.")
@click.option("--game", default="connect4", show_default=True)
@click.option("--sims", default=200, show_default=True, help="Simulations when scoring with search.")
@click.option("--only", default="", help="Comma-separated variants to run (default: all).")
@click.option("--variant", "extra", multiple=True, help="NAME:key=value,... adds a variant.")
@click.option("--set", "common", default="", help="key=value,... for every variant (e.g. seed=1).")
@click.option("--retrain", is_flag=True, help="Train variants whose folder already holds weights afresh.")
def main(positions: str, minutes: float, out_dir: Path, game: str, sims: int, only: str, extra: tuple[str, ...],
         common: str, retrain: bool) -> None:
    variants = dict(VARIANTS)
    for spec in extra:
        name, _, pairs = spec.partition(":")
        variants[name.strip()] = parse_pairs(pairs)
    chosen = [v.strip() for v in only.split(",") if v.strip()] or list(variants)
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise click.BadParameter(f"unknown variants {unknown}; known: {', '.join(variants)}", param_hint="--only")
    try:  # the labelled set too, before hours of training
        load_positions(positions, get_game(game))
    except AzjobsError as e:
        raise click.ClickException(str(e)) from None
    shared = {"game": game, **COMMON, **parse_pairs(common)}
    for name in chosen:  # every variant's settings checked before hours of training start
        try:
            resolve(flags={**shared, **variants[name]})
        except SettingsError as e:
            raise click.ClickException(f"variant {name}: {e}") from None
    rows = []
    for name in chosen:
        flags = {**shared, **variants[name]}
        run_dir = (out_dir / f"{game}-{name}").resolve()
        counters_file = run_dir / "compare_counters.json"
        if retrain or not versions_in(run_dir / WEIGHTS_DIR) or not counters_file.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            click.echo(f"training {name} for {minutes:g} min in {run_dir} ...", err=True)
            counters = train(name, flags, run_dir, minutes)
        else:
            counters = json.loads(counters_file.read_text())
        r = row(name, flags, counters, score(run_dir, positions, 0), score(run_dir, positions, sims), sims)
        rows.append(r)
        click.echo(json.dumps(r))
    click.echo(markdown(rows, minutes))


if __name__ == "__main__":
    main()
