"""`azjobs bench strength`: accuracy on labelled positions of a player, or of a run's weights versions at
given training minutes (a strength curve); one JSON line on stdout per (version, simulations) scored.

The curve takes, for each mark, the newest version published within that many minutes of training (the
`train_seconds` its weights carry). It reads the storage root only, so it runs after a run or while it goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from azjobs.bench import emit, say
from azjobs.errors import AzjobsError
from azjobs.eval import strength
from azjobs.eval.positions import resolve_positions
from azjobs.eval.records import version_at


def parse_minutes(text: str) -> tuple[float, ...]:
    """`10,20,30` as training minutes; ValueError naming the entry that is not a number of minutes."""
    marks = []
    for item in (part.strip() for part in text.split(",")):
        try:
            mark = float(item)
        except ValueError:
            raise ValueError(f"{item!r} is not a number of minutes") from None
        if not mark >= 0:
            raise ValueError(f"{item!r} is not a number of minutes")
        marks.append(mark)
    return tuple(marks)


def run(
    positions: str,
    player: str,
    *,
    run_dir: Path | None,
    game: str | None,
    sims: Sequence[int | None],
    minutes: Sequence[float] = (),
    seed: int = 0,
    device: str = "cpu",
    record: bool = False,
) -> list[dict[str, Any]]:
    """Score `player` with each of `sims` (None: the run's num_simulations); with `minutes`, the run's
    network at each mark instead. Prints each result as a JSON line as it comes; returns them."""
    resolve_positions(positions)  # an unknown set or a missing file, before any version is scored
    if not minutes:
        return [_score(positions, player, run_dir, game, s, seed, device, record, {}) for s in sims]
    if player != "net":
        raise AzjobsError(
            f"--minutes picks versions of the run's network, so it scores no --player {player}: drop --player"
        )
    if run_dir is None:
        raise AzjobsError("--minutes picks versions of a run: pass its --run-dir")
    results = []
    for mark in minutes:
        found = version_at(run_dir, mark)
        if found is None:
            say(f"{mark:g} min: no weights version published by then")
            results.append(emit({"minutes": mark, "error": "no version published by then"}))
            continue
        version, seconds = found
        point = {"minutes": mark, "train_minutes": round(seconds / 60, 1)}
        say(f"within {mark:g} min of training: net:{version}, published at {point['train_minutes']:g} min")
        results.extend(_score(positions, f"net:{version}", run_dir, game, s, seed, device, record, point) for s in sims)
    return results


def _score(
    positions: str,
    player: str,
    run_dir: Path | None,
    game: str | None,
    sims: int | None,
    seed: int,
    device: str,
    record: bool,
    point: dict[str, Any],
) -> dict[str, Any]:
    result = strength.bench(
        positions, player, run_dir=run_dir, game=game, sims=sims, seed=seed, device=device, record=record
    )
    for line in strength.describe(result):
        say(line)
    return emit({**point, **result.to_dict()})
