"""The roles of `azjobs run` as child processes of this host (`python -m azjobs ROLE`), each in its own session.

They stop in order (workers, gpu-serve, the trainer); a second Ctrl-C or SIGTERM meanwhile kills what still runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

STOP_GRACE_S = 15.0


@dataclass
class Child:
    role: str
    process: subprocess.Popen


def spawn(role: str, args: list[str], url: str, run_dir: Path, log_dir: Path, threads: int) -> Child:
    env = dict(os.environ, AZJOBS_REDIS_URL=url, OMP_NUM_THREADS=str(threads), AZJOBS_THREADS=str(threads))
    log = open(log_dir / f"{role}.log", "ab")
    command = [sys.executable, "-m", "azjobs", *args, "--run-dir", str(run_dir)]
    # Its own session, so a Ctrl-C reaches only `azjobs run`, which stops the roles in order.
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    return Child(role, process)


class Signals:
    """Ctrl-C or SIGTERM: the first stops the run in order (as a KeyboardInterrupt); once stopping, any
    further one sets `urgent`, and whatever still runs is killed at once: nothing is left running headless."""

    def __init__(self) -> None:
        self.stopping = False
        self.urgent = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)  # `kill` stops the run as cleanly as Ctrl-C

    def __call__(self, signum: int, frame: object) -> None:
        if not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt
        self.urgent.set()


def stop_in_order(children: list[Child], console: Console, urgent: threading.Event) -> None:
    """Workers first (their job is cut short), then the server, then the trainer (it checkpoints).

    Once `urgent` is set (a second signal), it stops waiting: every child still running is killed now."""
    for role in ("worker", "gpu-serve", "trainer"):
        group = [c for c in children if c.role.startswith(role) and c.process.poll() is None]
        _signal_all(group, signal.SIGTERM)
        # A worker's first SIGTERM waits for its job; a second one stops it now.
        if role == "worker" and not urgent.wait(1.1):
            _signal_all(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in group:
            if not _wait(child, deadline, urgent) and not urgent.is_set():
                console.print(f"{child.role} did not stop in {STOP_GRACE_S:.0f} s; killing it")
                _kill(child)
        if urgent.is_set():
            left = [c for c in children if c.process.poll() is None]
            console.print(f"second signal: killing {', '.join(c.role for c in left) or 'nothing'} now")
            for child in left:
                _kill(child)
            return


def _signal_all(group: list[Child], sig: signal.Signals) -> None:
    for child in group:
        if child.process.poll() is None:
            child.process.send_signal(sig)


def _wait(child: Child, deadline: float, urgent: threading.Event) -> bool:
    """Wait for `child` until `deadline` or a second signal; True if it exited."""
    while child.process.poll() is None:
        if urgent.is_set() or time.monotonic() > deadline:
            return False
        urgent.wait(0.1)
    return True


def _kill(child: Child) -> None:
    if child.process.poll() is None:
        child.process.kill()
    child.process.wait()
