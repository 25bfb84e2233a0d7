"""`azjobs plot`: ratings and accuracy of a run's weights versions against training time, training steps
and positions made by self-play (what the weights' metadata says of each version), as a PNG.

Reads only the storage root (`<run_dir>/evals/`), so it works after `azjobs run` has stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azjobs.errors import AzjobsError
from azjobs.eval import ratings
from azjobs.eval.match import MatchRecord
from azjobs.eval.records import PLOT_FILE, AccuracyRecord, evals_dir, read_files, stored_ratings
from azjobs.storage.atomic import write_with

# The x axes, one column of panels each: the version metadata drawn, its label, its scale.
AXES = (
    ("train_seconds", "training time (minutes)", 1 / 60),
    ("step", "training steps", 1.0),
    ("positions_made", "positions made by self-play", 1.0),
)


@dataclass(frozen=True)
class Summary:
    """What a run's evaluations say: ratings of every player, and each version's points."""

    ratings: dict[str, ratings.Rating]
    versions: dict[str, dict[str, float]]  # net player -> version_info (step, train_seconds, ...)
    accuracy: list[AccuracyRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratings": {p: r.to_dict() for p, r in sorted(self.ratings.items(), key=lambda i: -i[1].elo)},
            "accuracy": [
                {
                    "player": a.player,
                    "sims": a.sims,
                    "step": a.version.get("step"),
                    "train_seconds": a.version.get("train_seconds"),
                    "positions_made": a.version.get("positions_made"),
                    "games_made": a.version.get("games_made"),
                    "weak_accuracy": a.weak_accuracy,
                    "strong_accuracy": a.strong_accuracy,
                }
                for a in sorted(self.accuracy, key=lambda a: (a.sims, a.version.get("step", 0)))
            ],
        }


def summarize(run_dir: Path) -> Summary:
    matches = read_files(run_dir, MatchRecord)
    scored = read_files(run_dir, AccuracyRecord)
    versions: dict[str, dict[str, float]] = {}
    for m in matches:
        versions.update(m.versions)
    for a in scored:
        if a.version:
            versions[a.player] = a.version
    fitted = ratings.fit_versions((m.result() for m in matches), known=stored_ratings(run_dir))
    return Summary(fitted, versions, scored)


def plot(run_dir: Path, out: Path | None = None) -> tuple[Path, Summary]:
    """Draw the run's curves into `out` (default `<run_dir>/evals/strength.png`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise AzjobsError("azjobs plot needs matplotlib: pip install matplotlib") from None
    summary = summarize(run_dir)
    if not summary.ratings and not summary.accuracy:
        raise AzjobsError(
            f"run {run_dir} has no evaluation results yet (evals/ is empty): "
            "they come with the trainer's schedule (eval_every_versions) or `azjobs eval`"
        )
    out = Path(out) if out is not None else evals_dir(run_dir) / PLOT_FILE
    fig, axes = plt.subplots(2, len(AXES), figsize=(6 * len(AXES), 8), sharex="col")
    for column, (key, label, scale) in enumerate(AXES):
        _ratings_panel(axes[0][column], summary, key, scale)
        _accuracy_panel(axes[1][column], summary, key, scale)
        axes[1][column].set_xlabel(label)
    axes[0][0].set_ylabel("Elo (random = 0)")
    axes[1][0].set_ylabel("share of optimal moves")
    fig.suptitle(f"{Path(run_dir).resolve().name}: strength of the weights versions")
    fig.tight_layout()
    write_with(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return out, summary


def rating_points(summary: Summary, key: str, scale: float = 1.0) -> list[tuple[float, float, float]]:
    """(x, Elo, its standard error) of each rated version whose metadata has `key`, by x."""
    return sorted(
        (summary.versions[p][key] * scale, r.elo, r.se)
        for p, r in summary.ratings.items()
        if p in summary.versions and key in summary.versions[p]
    )


def accuracy_points(summary: Summary, key: str, scale: float = 1.0) -> dict[int, list[tuple[float, float, float]]]:
    """Simulations -> (x, weak, strong accuracy) of each scored version whose metadata has `key`, by x."""
    points: dict[int, list[tuple[float, float, float]]] = {}
    for a in summary.accuracy:
        if key in a.version:
            points.setdefault(a.sims, []).append((a.version[key] * scale, a.weak_accuracy, a.strong_accuracy))
    return {sims: sorted(rows) for sims, rows in points.items()}


def _ratings_panel(ax: Any, summary: Summary, key: str, scale: float) -> None:
    points = rating_points(summary, key, scale)
    if points:
        xs, ys, es = zip(*points)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label="weights versions")
    for player, rating in summary.ratings.items():
        if not player.startswith("net"):
            ax.axhline(rating.elo, linestyle="--", linewidth=0.8, color="grey")
            ax.annotate(player, (0, rating.elo), xycoords=("axes fraction", "data"), fontsize=8, color="grey")
    ax.grid(alpha=0.3)


def _accuracy_panel(ax: Any, summary: Summary, key: str, scale: float) -> None:
    points = accuracy_points(summary, key, scale)
    for sims in sorted(points, reverse=True):
        xs, weak, strong = zip(*points[sims])
        who = f"{sims} sims" if sims else "network alone"
        line = ax.plot(xs, weak, marker="o", label=f"weak, {who}")[0]
        ax.plot(xs, strong, marker="x", linestyle=":", color=line.get_color(), label=f"strong, {who}")
    if summary.accuracy:
        ax.axhline(
            summary.accuracy[0].random_weak_accuracy,
            linestyle="--",
            linewidth=0.8,
            color="grey",
            label="weak, a random move",
        )
        ax.legend(fontsize=8, loc="lower right")
    if summary.accuracy and not points:
        ax.text(0.5, 0.5, f"no version's weights carry {key}", ha="center", transform=ax.transAxes, color="grey")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
