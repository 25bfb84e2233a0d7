"""Roles as child processes of this host (`python -m azjobs ROLE`), each in its own session: `azjobs run`'s and
the benches'.

They stop in order (workers, gpu-serve, the trainer); a second Ctrl-C or SIGTERM meanwhile kills what still runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

STOP_GRACE_S = 15.0
STOP_ORDER = ("worker", "gpu-serve", "trainer")  # role prefixes; any other role stops last
WORKER_SECOND_SIGTERM_S = 1.1  # a worker's first SIGTERM waits for its job; a second one, this much later, stops it


@dataclass
class Child:
    role: str
    process: subprocess.Popen


def spawn(
    role: str,
    args: list[str],
    url: str,
    run_dir: Path,
    log_dir: Path,
    threads: int,
    *,
    own_env: bool = False,
    capture_stdout: bool = False,
) -> Child:
    """Start `python -m azjobs ARGS --run-dir RUN_DIR` on Redis `url` with `threads` CPU threads, its output
    appended to `log_dir/ROLE.log`. `own_env`: without this process's AZJOBS_ variables (only the flags
    given count); `capture_stdout`: its stdout to a pipe (read it with `process.communicate`), stderr alone
    to the log."""
    inherited = {k: v for k, v in os.environ.items() if not (own_env and k.startswith("AZJOBS_"))}
    env = dict(inherited, AZJOBS_REDIS_URL=url, OMP_NUM_THREADS=str(threads), AZJOBS_THREADS=str(threads))
    command = [sys.executable, "-m", "azjobs", *args, "--run-dir", str(run_dir)]
    with open(log_dir / f"{role}.log", "ab") as log:
        # Its own session, so a Ctrl-C reaches only the parent, which stops the roles in order.
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE if capture_stdout else log,
            stderr=log if capture_stdout else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
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


def stop_in_order(
    children: Sequence[Child],
    console: Console | None = None,
    urgent: threading.Event | None = None,
    *,
    order: Sequence[str] = STOP_ORDER,
    grace_s: float = STOP_GRACE_S,
) -> None:
    """SIGTERM the children a group at a time, by role prefix in `order` (by default workers first: their job
    is cut short; then the server; then the trainer: it checkpoints), the others last; kill a child still
    running `grace_s` later. What happens is told on `console` (if given).

    Once `urgent` is set (a second signal), it stops waiting: every child still running is killed now."""
    urgent = urgent or threading.Event()
    for group in _groups(children, order):
        _signal_all(group, signal.SIGTERM)
        if any(c.role.startswith("worker") for c in group) and not urgent.wait(WORKER_SECOND_SIGTERM_S):
            _signal_all(group, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in group:
            if not _wait(child, deadline, urgent) and not urgent.is_set():
                _say(console, f"{child.role} did not stop in {grace_s:.0f} s; killing it")
                kill(child)
        if urgent.is_set():
            left = [c for c in children if c.process.poll() is None]
            _say(console, f"second signal: killing {', '.join(c.role for c in left) or 'nothing'} now")
            for child in left:
                kill(child)
            return


def kill(child: Child) -> None:
    """SIGKILL, and wait for it."""
    if child.process.poll() is None:
        child.process.kill()
    child.process.wait()


def exited(children: Sequence[Child]) -> list[Child]:
    """The children that are no longer running."""
    return [c for c in children if c.process.poll() is not None]


def _groups(children: Sequence[Child], order: Sequence[str]) -> list[list[Child]]:
    """The running children, a group for each prefix in `order`, then one of the others."""
    running = [c for c in children if c.process.poll() is None]
    groups = [[c for c in running if c.role.startswith(prefix)] for prefix in order]
    rest = [c for c in running if not any(c.role.startswith(prefix) for prefix in order)]
    return [group for group in [*groups, rest] if group]


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


def _say(console: Console | None, text: str) -> None:
    if console is not None:
        console.print(text)
