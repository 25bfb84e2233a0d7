"""A process whose wall clock runs off by a set offset (libfaketime), its monotonic clock true.

A time namespace cannot shift CLOCK_REALTIME, so LD_PRELOAD is how. Each candidate library is probed
first: a build that breaks time.sleep (Debian's 0.9.10 with a true monotonic clock) would kill the
process under test rather than test it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def candidates() -> list[Path]:
    """The libfaketime the `libfaketime` test dependency ships (found without importing it), then Debian's."""
    spec = importlib.util.find_spec("libfaketime")
    shipped = (
        [
            Path(p) / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
            for p in (spec.submodule_search_locations or [])
        ]
        if spec
        else []
    )
    return [*shipped, Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")]


def skewed_env(offset_s: int) -> dict[str, str]:
    """Environment variables that put a process's wall clock `offset_s` seconds off; skips if none works."""
    probe = "import time; t = time.time(); time.sleep(0.05); print(t)"
    tried = []
    for library in candidates():
        if not library.exists():
            continue
        env = {"LD_PRELOAD": str(library), "FAKETIME": f"{offset_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        try:
            done = subprocess.run(
                [sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            tried.append(f"{library} (time.sleep hangs)")
            continue
        if done.returncode == 0 and abs(float(done.stdout) - time.time() - offset_s) < 10:
            return env
        tried.append(f"{library} ({(done.stderr.strip().splitlines() or ['clock not skewed'])[-1]})")
    pytest.skip(
        "needs a libfaketime that runs Python (pip install libfaketime) to skew a process's clock; "
        f"tried: {'; '.join(tried) or 'none found'}"
    )
