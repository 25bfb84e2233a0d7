"""Accuracy of a run's weights versions at given training minutes, on a labelled set; one JSON line each.

    python scripts/strength_curve.py --run-dir runs/connect4 --positions connect4 \
        --minutes 10,20,30,60 --sims 200 --sims 0

For each mark it takes the newest version published within that many minutes of training
(the `train_seconds` in its metadata), scores it with `azjobs bench strength --record` (so
`azjobs plot` draws the points too), and prints one JSON object per (minutes, sims).
It needs no Redis: it reads the storage root, after the run or while it goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from azjobs.errors import AzjobsError
from azjobs.eval import strength
from azjobs.eval.positions import resolve_positions
from azjobs.eval.records import version_at


@click.command()
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--positions", required=True, metavar="NAME|FILE",
              help="Labelled positions: a bundled set (connect4) or a JSON-lines file.")
@click.option("--minutes", default="10,20,30,60", show_default=True, help="Comma-separated training minutes.")
@click.option("--sims", "sims_list", type=int, multiple=True, default=(200, 0), show_default=True)
def main(run_dir: Path, positions: str, minutes: str, sims_list: tuple[int, ...]) -> None:
    try:  # a one-line error for an unknown set or a missing file, before any version is scored
        resolve_positions(positions)
    except AzjobsError as e:
        raise click.ClickException(str(e)) from None
    for mark in (float(m) for m in minutes.split(",")):
        found = version_at(run_dir, mark)
        if found is None:
            click.echo(json.dumps({"minutes": mark, "error": "no version published by then"}))
            continue
        version, seconds = found
        for sims in sims_list:
            result = strength.bench(positions, f"net:{version}", run_dir=run_dir, game=None, sims=sims, record=True)
            out = result.to_dict()
            click.echo(json.dumps({"minutes": mark, "train_minutes": round(seconds / 60, 1), "version": version,
                                   "sims": sims, "weak_accuracy": out["weak_accuracy"],
                                   "strong_accuracy": out["strong_accuracy"], "phases": out["phases"]}))


if __name__ == "__main__":
    main()
