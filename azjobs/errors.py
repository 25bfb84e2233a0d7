"""The few errors a user can cause; each message names the cause and the fix."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path


class AzjobsError(Exception):
    """A user-facing failure: the CLI prints its one-line message and exits non-zero."""


class StorageFullError(AzjobsError):
    """The storage root (or the disk under it) has no space left; what was written before is intact."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn a full disk under `path` into a one-line StorageFullError naming the file and the fix."""
    try:
        yield
    except OSError as e:
        if e.errno in _FULL:
            raise StorageFullError(
                f"storage root full: no space left on device writing {path}; free space there "
                "(files written before are intact and the write is retried)"
            ) from None
        raise
