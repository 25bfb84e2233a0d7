"""`azjobs bench strength`: accuracy on labelled positions of a player, or of a run's weights versions at
given training minutes or positions made (a strength curve); one JSON line on stdout per (version,
simulations) scored, each with the machine's speed (`azjobs.bench.machine`) and what the run had made.

The curve takes, for each mark, the newest version whose weights say it was published within that many
minutes of training (`train_seconds`) or positions made (`positions_made`). It reads the storage root
only, so it runs after a run or while it goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azjobs.bench import emit, machine, say
from azjobs.errors import AzjobsError
from azjobs.eval import records, strength
from azjobs.eval.positions import resolve_positions


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


def parse_positions(text: str) -> tuple[int, ...]:
    """`100k,250k,1M` (or plain integers) as positions made; ValueError naming the entry that is not a count."""
    counts = []
    for item in (part.strip() for part in text.split(",")):
        scale = {"k": 1_000, "m": 1_000_000}.get(item[-1:].lower(), 1)
        try:
            count = float(item[:-1] if scale > 1 else item) * scale
        except ValueError:
            raise ValueError(f"{item!r} is not a number of positions (e.g. 250000 or 250k)") from None
        if not count >= 0 or count != int(count):
            raise ValueError(f"{item!r} is not a number of positions (e.g. 250000 or 250k)")
        counts.append(int(count))
    return tuple(counts)


@dataclass(frozen=True)
class Mark:
    """A point of the curve: `name` (minutes, at_positions) = `value` in the JSON lines; the newest version
    whose metadata `key` is at most `limit`."""

    name: str
    value: float
    key: str
    limit: float

    def spoken(self) -> str:
        if self.name == "minutes":
            return f"within {self.value:g} min of training"
        return f"by {self.value:,.0f} positions made"


def marks_of(minutes: Sequence[float], at_positions: Sequence[int]) -> list[Mark]:
    return [Mark("minutes", m, "train_seconds", m * 60) for m in minutes] + [
        Mark("at_positions", n, "positions_made", n) for n in at_positions
    ]


def run(
    positions: str,
    player: str,
    *,
    run_dir: Path | None,
    game: str | None,
    sims: Sequence[int | None],
    minutes: Sequence[float] = (),
    at_positions: Sequence[int] = (),
    seed: int = 0,
    device: str = "cpu",
    record: bool = False,
    machine_seconds: float = machine.SPEED_SECONDS,
) -> list[dict[str, Any]]:
    """Score `player` with each of `sims` (None: the run's num_simulations); with `minutes` or
    `at_positions`, the run's network at each mark instead. Every line carries the machine's speed
    (`machine.measure`, once, before the first line). Prints each result as a JSON line as it comes; returns them."""
    resolve_positions(positions)  # an unknown set or a missing file, before any version is scored
    marks = marks_of(minutes, at_positions)
    option = "--minutes" if minutes else "--at-positions"
    if marks and player != "net":
        raise AzjobsError(
            f"{option} picks versions of the run's network, so it scores no --player {player}: drop --player"
        )
    if marks and run_dir is None:
        raise AzjobsError(f"{option} picks versions of a run: pass its --run-dir")
    versions = records.published(run_dir) if run_dir is not None else []
    scoring = Scoring(positions, run_dir, game, seed, device, record, versions, machine_seconds)
    if not marks:
        return [scoring.score(player, s, {}) for s in sims]
    results = []
    for mark in marks:
        found = records.newest_within(versions, mark.key, mark.limit)
        if found is None:
            say(f"{mark.spoken()}: no weights version published by then{_lacking(versions, mark.key)}")
            results.append(emit({mark.name: mark.value, "error": "no version published by then", **scoring.speed()}))
            continue
        say(f"{mark.spoken()}: net:{int(found['version'])}, published at {_describe(found)}")
        results.extend(scoring.score(f"net:{int(found['version'])}", s, {mark.name: mark.value}) for s in sims)
    return results


@dataclass
class Scoring:
    """What every point of one command shares: the labelled set, the run and its versions, the machine's speed."""

    positions: str
    run_dir: Path | None
    game: str | None
    seed: int
    device: str
    record: bool
    versions: list[dict[str, float]]
    machine_seconds: float
    measured: dict[str, Any] = field(default_factory=dict)

    def speed(self) -> dict[str, Any]:
        """The machine's speed, measured on the first call (after the first scoring: a mistake costs no wait)."""
        if not self.measured:
            self.measured.update(machine.measure(self.machine_seconds))
            rate = self.measured["machine_positions_per_sec"]
            if rate is not None:
                say(f"this machine: {rate:,.0f} positions/s (as bench net --threads 1, batch 64)")
        return self.measured

    def score(self, player: str, sims: int | None, point: dict[str, Any]) -> dict[str, Any]:
        result = strength.bench(
            self.positions,
            player,
            run_dir=self.run_dir,
            game=self.game,
            sims=sims,
            seed=self.seed,
            device=self.device,
            record=self.record,
        )
        for line in strength.describe(result):
            say(line)
        scored = result.to_dict()
        if "weights_version" in scored:
            own = not player.startswith("net@")  # another run's version number says nothing of this run
            scored.update(made(self.versions if own else [], scored["weights_version"]))
        return emit({**point, **scored, **self.speed()})


def made(versions: list[dict[str, float]], version: Any) -> dict[str, Any]:
    """What the run had made when `version` was published: train_minutes, step, positions_made and
    games_made (None where its weights do not say: older weights, or a player not of this run)."""
    info = next((v for v in versions if v["version"] == version), {})
    seconds = info.get("train_seconds")
    return {
        "train_minutes": None if seconds is None else round(seconds / 60, 1),
        **{key: info.get(key) for key in ("step", "positions_made", "games_made")},
    }


def _lacking(versions: list[dict[str, float]], key: str) -> str:
    if versions and all(key not in v for v in versions):
        return f" (no version's weights carry {key}: they are older than it; use --minutes)"
    return ""


def _describe(info: dict[str, float]) -> str:
    spoken = f"{info.get('train_seconds', float('nan')) / 60:.1f} min"
    if "positions_made" in info:
        spoken += f", {int(info['positions_made']):,} positions and {int(info.get('games_made', 0)):,} games made"
    return spoken
