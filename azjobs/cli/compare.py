"""`azjobs bench compare`: strength per compute, each search variant trained alike, then scored (docs/strength.md)."""

from __future__ import annotations

from pathlib import Path

import click

from azjobs.cli.bench import bench_group
from azjobs.cli.options import sims_option


def parse_seeds(text: str) -> list[int] | None:
    """`0,1` as seeds; None when empty (the seed of the settings, folders without a seed)."""
    try:
        seeds = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise click.BadParameter(
            f"seeds are whole numbers, comma-separated, got {text!r}", param_hint="--seeds"
        ) from None
    if any(seed < 0 for seed in seeds):
        raise click.BadParameter(f"seeds are at least 0, got {text!r}", param_hint="--seeds")
    return seeds or None


@bench_group.command("compare")
@click.option(
    "--positions",
    required=True,
    metavar="NAME|FILE",
    help="Labelled positions of the game: a bundled set (connect4) or a JSON-lines file.",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Training minutes of each variant (`azjobs run`; default 30, or none with --max-steps).",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Train each variant for this many steps instead (learning per step rather than per minute).",
)
@click.option(
    "--out",
    "out_dir",
    envvar="AZJOBS_BENCH_COMPARE_OUT",
    default=Path("runs/compare"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the variants' runs.",
)
@click.option("--game", default="connect4", show_default=True)
@sims_option(default=200, help="Simulations when scoring with search.")
@click.option(
    "--only",
    default="",
    metavar="V,V,...",
    help="Comma-separated variants to run, or `ablation` for defaults and each technique (default: all).",
)
@click.option(
    "--variant",
    "extra",
    envvar="AZJOBS_BENCH_COMPARE_VARIANT",
    multiple=True,
    metavar="NAME:KEY=VALUE,...",
    help="Adds a variant (repeatable).",
)
@click.option(
    "--set",
    "common",
    envvar="AZJOBS_BENCH_COMPARE_SET",
    default="",
    metavar="KEY=VALUE,...",
    help="Settings of every variant (e.g. seed=1).",
)
@click.option(
    "--seeds",
    default="",
    metavar="N,N,...",
    help="Train each variant once per seed (folders GAME-VARIANT-seedN); the table adds the means.",
)
@click.option("--retrain", is_flag=True, help="Train variants whose folder already holds weights afresh.")
def bench_compare_cmd(
    positions: str,
    minutes: float | None,
    max_steps: int | None,
    out_dir: Path,
    game: str,
    sims: int,
    only: str,
    extra: tuple[str, ...],
    common: str,
    seeds: str,
    retrain: bool,
) -> None:
    """Strength per compute: each variant trained for the same minutes (or steps), then scored on labelled
    positions, with its own search and with the network alone.

    Search variants, each on plain AlphaZero: baseline, gumbel, gumbel-32, pcr, fpu, forced, resign,
    combined. The ablation, each on the game's defaults: defaults, q, merge, soft, surprise, cyclic,
    one-cycle, prog-sims, ema, grow, window, no-pcr. See docs/strength.md. A variant whose folder holds
    weights is only scored again. One JSON line per run as it finishes, then a Markdown table on stderr.
    """
    from azjobs.bench import compare

    compare.run(
        positions,
        minutes=30.0 if minutes is None and max_steps is None else minutes,
        max_steps=max_steps,
        out_dir=out_dir,
        game=game,
        sims=sims,
        only=[v.strip() for v in only.split(",") if v.strip()],
        extra=extra,
        common=common,
        seeds=parse_seeds(seeds),
        retrain=retrain,
    )
