"""`azjobs run` stopping: the first Ctrl-C stops the roles in order; a second one, while it stops, kills what
still runs (trainer, gpu-serve, workers, the embedded Redis) and exits, leaving nothing running headless."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

AZJOBS = [sys.executable, "-m", "azjobs"]
TINY = [
    "--game",
    "tictactoe",
    "--net-blocks",
    "1",
    "--net-channels",
    "8",
    "--num-simulations",
    "4",
    "--games-per-job",
    "4",
    "--workers",
    "1",
    "--minutes",
    "10",
]


def wait_for(what: str, found, timeout_s: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not found():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.2)


def said(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text(errors="replace")


def children_of(pid: int) -> dict[int, str]:
    """The live child processes of `pid` (pid: command line), from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(stat.parent.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Lines(threading.Thread):
    """Collects a pipe's lines as they come."""

    def __init__(self, pipe) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.pipe, self.lines = pipe, []

    def run(self) -> None:
        for line in self.pipe:
            self.lines.append(line.decode(errors="replace"))

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def test_a_second_ctrl_c_while_stopping_leaves_nothing_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "sig"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_")}
    run = subprocess.Popen(
        [*AZJOBS, "run", *TINY, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env, OMP_NUM_THREADS="1", COLUMNS="200"),
    )
    out = Lines(run.stdout)
    out.start()
    started: dict[int, str] = {}
    try:
        logs = run_dir / "logs"
        wait_for("the worker taking jobs", lambda: said(logs / "worker-1.log", "taking jobs from"))
        wait_for("gpu-serve serving", lambda: said(logs / "gpu-serve.log", "now serving weights version"))
        wait_for("the trainer's first weights", lambda: said(logs / "trainer.log", "published weights version 1"))
        started = children_of(run.pid)
        roles = " ".join(started.values())
        assert all(role in roles for role in ("redis-server", "azjobs train", "azjobs gpu-serve", "azjobs worker"))

        run.send_signal(signal.SIGINT)
        wait_for("the run stopping", lambda: out.has("stopping:"), timeout_s=30)
        run.send_signal(signal.SIGINT)  # while it waits for the workers to stop
        code = run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        left = {pid: started[pid] for pid in started if alive(pid)}
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    out.join(timeout=5)
    text = "".join(out.lines)
    assert left == {}, text[-2000:]
    assert code != 0 and "second signal: killing" in text and "stopped at once on a second signal" in text
    assert not (run_dir / ".local-redis-url").exists()
