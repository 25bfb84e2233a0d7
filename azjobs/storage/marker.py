"""The storage marker: a random token in `<run_dir>/marker` and in Redis, so every process can tell
that the folder it was given is the run's own folder on the shared storage root, not a look-alike."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from azjobs import keys
from azjobs.cluster.connection import as_text, wait_for
from azjobs.errors import AzjobsError
from azjobs.storage.atomic import write_atomic

if TYPE_CHECKING:
    from redis import Redis

MARKER_FILE = "marker"


def read(run_dir: Path) -> str | None:
    try:
        return (Path(run_dir) / MARKER_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure(client: Redis, run: str, run_dir: Path) -> str:
    """Create the marker of the run that owns `run_dir` (once), and put it in Redis if Redis lacks it."""
    token = read(run_dir)
    if token is None:
        token = secrets.token_hex(16)
        write_atomic(Path(run_dir) / MARKER_FILE, token.encode())
    client.set(keys.marker(run), token, nx=True)
    return token


def check(client: Redis, run: str, run_dir: Path) -> str:
    """ "ok", or what is wrong with `run_dir` as seen from this machine."""
    stored = client.get(keys.marker(run))
    if stored is None:
        return "ok" if read(run_dir) is not None else "no marker yet"
    if not Path(run_dir).is_dir():
        return f"{run_dir} is missing here"
    found = read(run_dir)
    if found is None:
        return f"{run_dir} has no marker file: not the run's folder on the shared storage root"
    if found != as_text(stored):
        return f"{run_dir} belongs to another run of the same name: not the shared storage root"
    return "ok"


class StorageMismatchError(AzjobsError):
    """This machine's `--run-dir` is not the run's folder on the shared storage root."""


def require(
    client: Redis,
    run: str,
    run_dir: Path,
    *,
    role: str = "worker",
    say: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
) -> None:
    """Return once `run_dir` holds the run's marker; StorageMismatchError naming the folder, the marker
    expected and the fix otherwise. With `say`, first wait (saying so once) for the run to have a marker."""
    if say is not None:
        wait_for(
            lambda: client.get(keys.marker(run)) is not None or read(run_dir) is not None,
            say,
            f"{role}: waiting for run {run!r} to get its storage marker (the trainer makes it)",
            poll_s=poll_s,
        )
    problem = check(client, run, run_dir)
    if problem == "ok":
        return
    stored = client.get(keys.marker(run))
    expected = f"marker {as_text(stored)}" if stored is not None else "a marker file"
    raise StorageMismatchError(
        f"{role} refuses to use {Path(run_dir).resolve()}: {problem} (expected {expected} in {MARKER_FILE}); "
        f"mount the storage root on this machine or pass the run's folder on it as --run-dir"
    )
