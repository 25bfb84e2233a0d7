"""Strength against perfect play: the share of labelled positions where a player picks an optimal move.

Weakly correct: the chosen move keeps the best outcome (win, draw or loss); strongly correct: it
has the best score (the quickest win, the slowest loss). Reported overall and by game phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from azjobs.eval.positions import LabelledPositions, load_positions

# Phases by moves played (= pieces on the board in Connect Four): name -> (first, last) inclusive.
PHASES = {"<=10": (0, 10), "11-20": (11, 20), "21+": (21, 10**9)}


@dataclass(frozen=True)
class Accuracy:
    positions: int
    weak: int
    strong: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": self.positions,
            "weak_accuracy": round(self.weak / max(self.positions, 1), 4),
            "strong_accuracy": round(self.strong / max(self.positions, 1), 4),
        }


@dataclass(frozen=True)
class StrengthResult:
    overall: Accuracy
    phases: dict[str, Accuracy]
    random_weak_accuracy: float  # what a uniformly random legal move scores weakly, on average
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)  # who played: player, sims, weights version, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            **self.overall.to_dict(),
            "phases": {name: acc.to_dict() for name, acc in self.phases.items()},
            "random_weak_accuracy": round(self.random_weak_accuracy, 4),
            "seconds": round(self.seconds, 2),
        }


def outcome(scores: np.ndarray) -> np.ndarray:
    """+1 win, 0 draw, -1 loss for each score (NaN stays NaN)."""
    return np.sign(scores)


def grade(labels: LabelledPositions, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each chosen move is weakly and strongly correct.  # [P] int actions -> ([P] bool, [P] bool)"""
    rows = np.arange(len(labels))
    valid = (chosen >= 0) & (chosen < labels.scores.shape[1])
    picked = np.where(valid, labels.scores[rows, np.clip(chosen, 0, labels.scores.shape[1] - 1)], np.nan)
    best = labels.best
    weak = ~np.isnan(picked) & (outcome(picked) == outcome(best))
    strong = ~np.isnan(picked) & (picked == best)
    return weak, strong


def random_weak_accuracy(labels: LabelledPositions) -> float:
    """The expected weak accuracy of a uniformly random legal move."""
    legal = ~np.isnan(labels.scores)
    good = legal & (outcome(np.nan_to_num(labels.scores)) == outcome(labels.best)[:, None])
    return float((good.sum(axis=1) / legal.sum(axis=1)).mean())


def score(
    labels: LabelledPositions, chosen: np.ndarray, seconds: float = 0.0, extra: dict[str, Any] | None = None
) -> StrengthResult:
    """Grade the moves chosen in every labelled position."""
    weak, strong = grade(labels, np.asarray(chosen))
    phases = {}
    for name, (first, last) in PHASES.items():
        mask = (labels.moves_played >= first) & (labels.moves_played <= last)
        phases[name] = Accuracy(int(mask.sum()), int(weak[mask].sum()), int(strong[mask].sum()))
    overall = Accuracy(len(labels), int(weak.sum()), int(strong.sum()))
    return StrengthResult(overall, phases, random_weak_accuracy(labels), seconds, dict(extra or {}))


def measure(
    labels: LabelledPositions, player: Any, rng: np.random.Generator, extra: dict[str, Any] | None = None
) -> StrengthResult:
    """Ask `player` (see `azjobs.players`) for a move in every position and grade the answers."""
    started = time.monotonic()
    chosen = player.choose(labels.states, rng)
    return score(labels, chosen, time.monotonic() - started, {"player": player.name, **(extra or {})})


def bench(
    positions_file: str | Path,
    spec: str,
    *,
    run_dir: Path | None,
    game: str | None,
    sims: int | None,
    seed: int = 0,
    device: str = "cpu",
    record: bool = False,
) -> StrengthResult:
    """`azjobs bench strength`: load the player and the labelled set, and measure. With `record`,
    a network player's result is also saved under `<run_dir>/evals/` (for `azjobs plot`).
    `positions_file`: a bundled set's name (connect4) or a path; the result keeps it as given."""
    from azjobs.errors import AzjobsError
    from azjobs.players import NetPlayer, load_player

    found, player = load_player(spec, run_dir=run_dir, game=game, sims=sims, device=device)
    if record and not isinstance(player, NetPlayer):
        raise AzjobsError("--record keeps a weights version's accuracy with its run: use it with a net player")
    labels = load_positions(positions_file, found)
    extra: dict[str, Any] = {"game": found.name, "positions_file": str(positions_file)}
    if isinstance(player, NetPlayer):
        extra.update(weights_version=player.version, sims=player.sims)
    result = measure(labels, player, np.random.default_rng(seed), extra)
    if record and isinstance(player, NetPlayer) and run_dir is not None:
        _record(run_dir, player, result)
    return result


def _record(run_dir: Path, player: Any, result: StrengthResult) -> None:
    from azjobs.eval import records
    from azjobs.net.weights import read_metadata
    from azjobs.players import weights_from_run_dir

    _, data = weights_from_run_dir(run_dir)(player.version)
    info = {"version": player.version, **records.version_info(read_metadata(data))}
    record = records.AccuracyRecord.of(result.to_dict(), player=player.name, sims=player.sims, version=info)
    records.save(None, Path(run_dir).resolve().name, run_dir, record)


def describe(result: StrengthResult) -> list[str]:
    """A few lines for people: overall and per phase."""

    def line(name: str, acc: Accuracy) -> str:
        if not acc.positions:
            return f"{name:>8}: no positions"
        return (
            f"{name:>8}: {acc.positions:5d} positions  weak {acc.weak / acc.positions:6.1%}  "
            f"strong {acc.strong / acc.positions:6.1%}"
        )

    who = result.extra.get("player", "?")
    if "sims" in result.extra:
        who += f" ({result.extra['sims']} sims)"
    lines = [f"{who}: {result.seconds:.1f} s; a random move is weakly correct {result.random_weak_accuracy:.1%}"]
    lines.append(line("all", result.overall))
    lines.extend(line(name, acc) for name, acc in result.phases.items())
    return lines
