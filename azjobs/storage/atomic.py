"""Writing files on shared storage: temporary names that say who writes them, landing by rename (or
without overwriting), and sweeping the temporary files of writers that were killed.

A temporary name is `.tmp-<host>+<pid>+<random>-<final name>` beside the final file (readers skip
names that start with "."). A sweep removes one when its writer is on this host and dead, or when it
is older than `STALE_AFTER_S`: a writer on another host cannot be asked, and no write takes an hour.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

from azjobs.errors import writing

TMP_PREFIX = ".tmp-"
STALE_AFTER_S = 3600.0
_OWNER = re.compile(r"^\.tmp-(?P<host>[A-Za-z0-9.-]*)\+(?P<pid>\d+)\+[0-9a-f]+-")
# Errors of a file system that cannot make hard links (some FUSE and SMB mounts): land by rename then.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def host() -> str:
    """This machine's name as temporary names and locks record it (host-name characters only)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


def temp_path(path: Path) -> Path:
    """A temporary name for writing `path`, in the same folder (so the rename is atomic)."""
    path = Path(path)
    return path.parent / f"{TMP_PREFIX}{host()}+{os.getpid()}+{secrets.token_hex(4)}-{path.name}"


def land_new(tmp: Path, path: Path) -> bool:
    """Move a finished `tmp` to `path` unless `path` exists; whether it landed (tmp is gone either way).

    A hard link fails when the name is taken, so of two writers of one name exactly one lands.
    """
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        if os.path.exists(path):  # no links here: check, then rename (a narrow race, as on any such mount)
            return False
        os.replace(tmp, path)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def write_with(path: Path, fill: Callable[[Path], object], *, replace: bool = True) -> bool:
    """Write `path` atomically: `fill(tmp)` writes a temporary file beside it, which then lands by rename
    (or, with `replace=False`, only where `path` does not exist yet: see `land_new`); whether it landed.

    A full disk becomes a `StorageFullError`; the temporary file is gone however this ends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with writing(path):
            fill(tmp)
            if not replace:
                return land_new(tmp, path)
        os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary name in the same folder, synced, then renamed."""
    write_with(path, lambda tmp: _write_synced(tmp, data))


def _write_synced(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def is_stale(name: str, age_s: float, *, max_age_s: float = STALE_AFTER_S) -> bool:
    """Whether a temporary file of this name and age belongs to nobody who will finish it."""
    if not name.startswith(TMP_PREFIX):
        return False
    if age_s > max_age_s:
        return True
    owner = _OWNER.match(name)
    if owner is None or owner["host"] != host():
        return False  # another host's (or an older azjobs's) writer: only age tells
    pid = int(owner["pid"])
    return pid != os.getpid() and not _alive(pid)


def sweep(folder: Path, *, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files in `folder` (not below it); those removed."""
    folder = Path(folder)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    now = time.time() if now is None else now
    removed = []
    for name in names:
        try:
            age = now - os.stat(folder / name).st_mtime
            if is_stale(name, age, max_age_s=max_age_s):
                os.unlink(folder / name)
                removed.append(folder / name)
        except FileNotFoundError:
            continue  # its writer finished (or another sweeper was first)
    return removed
