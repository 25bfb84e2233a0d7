"""Sweeping a run's folders of the temporary files that killed writers left (see `azjobs.storage.atomic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from azjobs.storage.atomic import sweep
from azjobs.storage.replay import REPLAY_DIR
from azjobs.storage.weights import CANDIDATES_DIR, WEIGHTS_DIR

# Every folder of a run that files are written into by temporary name and rename. "checkpoints" and
# "evals" are CHECKPOINTS_DIR and EVALS_DIR, spelt out so that a worker need not import torch for them.
RUN_FOLDERS = ("", REPLAY_DIR, WEIGHTS_DIR, f"{WEIGHTS_DIR}/{CANDIDATES_DIR}", "checkpoints", "evals")


def sweep_temps(run_dir: Path, log: Callable[[str], None] = print) -> int:
    """Remove the stale temporary files in the run's folders; how many (said when any)."""
    removed = [path for folder in RUN_FOLDERS for path in sweep(Path(run_dir) / folder)]
    if removed:
        log(f"removed {len(removed)} temporary files left by killed writers in {run_dir}")
    return len(removed)
