"""Measure local-mode throughput: start `azjobs run`, sample its status, print one JSON object.

    python scripts/measure_local.py --game connect4 --minutes 5 --skip 1.5

Rates are taken between two status samples (after `--skip` minutes of warm-up, and
just before the end), so start-up and the first weights load don't count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from azjobs.cluster import status
from azjobs.cluster.connection import connect
from azjobs.cluster.local_mode import read_url_file


def sample(run_dir: Path) -> status.Snapshot:
    client = connect(read_url_file(run_dir))
    return status.collect(client, run_dir.name)


def served(snap: status.Snapshot) -> int:
    return sum(int(p.get("positions", 0)) for p in snap.processes if p.get("role") == "gpu-serve")


@click.command()
@click.option("--game", default="connect4", show_default=True)
@click.option("--minutes", type=float, default=5.0, show_default=True)
@click.option("--skip", type=float, default=1.5, show_default=True, help="Warm-up minutes not measured.")
def main(game: str, minutes: float, skip: float) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="azjobs-measure-")) / game
    cmd = [sys.executable, "-m", "azjobs", "run", "--game", game, "--minutes", str(minutes), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(skip * 60)
    first = sample(run_dir)
    time.sleep((minutes - skip) * 60 - 20)
    last = sample(run_dir)
    proc.wait()
    dt = last.time - first.time
    games = int(last.stats.get("games", 0)) - int(first.stats.get("games", 0))
    positions = int(last.stats.get("positions", 0)) - int(first.stats.get("positions", 0))
    click.echo(
        json.dumps(
            {
                "game": game,
                "seconds_measured": round(dt, 1),
                "games_per_min": round(games / dt * 60, 1),
                "positions_per_s": round(positions / dt, 1),
                "evals_per_s": round((served(last) - served(first)) / dt, 1),
                "train_steps_per_s": round(
                    (int(last.trainer.get("step", 0)) - int(first.trainer.get("step", 0))) / dt, 2
                ),
                "weights_version": last.weights_version,
            }
        )
    )


if __name__ == "__main__":
    main()
