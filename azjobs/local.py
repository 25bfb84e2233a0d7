"""`azjobs run`: the whole system on one machine, with a private embedded Redis.

It starts a redis-server of its own (on a unix socket, so it can't touch any other
Redis), then the same processes a cluster runs, as child processes: one inference
server, N workers and the trainer; it shows a live view until the time is up or
Ctrl-C, then stops them in order. Everything lasting is on the storage root, so running
it again on the same folder resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar

from azjobs import embedded, settings as run_settings, status
from azjobs.connection import connect
from azjobs.errors import AzjobsError
from azjobs.settings import Settings
from azjobs.storage import lease, marker

LOCAL_URL_FILE = ".local-redis-url"  # lets `azjobs status --run-dir` find a running local mode
STOP_GRACE_S = 15.0


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass
class Child:
    role: str
    process: subprocess.Popen


def _spawn(role: str, args: list[str], url: str, run_dir: Path, log_dir: Path, threads: int) -> Child:
    env = dict(os.environ, AZJOBS_REDIS_URL=url, OMP_NUM_THREADS=str(threads), AZJOBS_THREADS=str(threads))
    log = open(log_dir / f"{role}.log", "ab")
    command = [sys.executable, "-m", "azjobs", *args, "--run-dir", str(run_dir)]
    # Its own session, so a Ctrl-C reaches only `azjobs run`, which stops the roles in order.
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    return Child(role, process)


def _stop(children: list[Child], console: Console) -> None:
    """Workers first (their job is cut short), then the server, then the trainer (it checkpoints)."""
    order = ["worker", "gpu-serve", "trainer"]
    for role in order:
        group = [c for c in children if c.role.startswith(role)]
        for child in group:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in group:
            if role == "worker":
                # A worker's first SIGTERM waits for its job; a second one stops it now.
                time.sleep(1.1)
                if child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                console.print(f"{child.role} did not stop in {STOP_GRACE_S:.0f} s; killing it")
                child.process.kill()
                child.process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(
    settings: Settings,
    run_dir: Path,
    *,
    minutes: float,
    workers: int | None = None,
    console: Console | None = None,
) -> status.Snapshot:
    """Run everything until `minutes` have passed or Ctrl-C; returns the last status snapshot."""
    console = console or Console()
    run_dir = Path(run_dir).resolve()
    run_name = run_dir.name
    workers = workers or settings.num_workers or default_workers()
    holder = lease.holder_of(run_dir)  # a second `azjobs run` on this folder would start a second trainer
    if holder is not None:
        raise AzjobsError(lease.busy_message(run_name, holder, str(run_dir / lease.LOCK_FILE)))
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the run as cleanly as Ctrl-C
    server = embedded.start()
    children: list[Child] = []
    url_file = run_dir / LOCAL_URL_FILE
    try:
        client = connect(server.url)
        stored = run_settings.publish(client, run_name, run_dir, settings)
        marker.ensure(client, run_name, run_dir)
        if stored != settings:
            console.print(f"[yellow]run {run_name} exists: resuming with its stored settings ({run_dir / 'settings.toml'})")
        url_file.write_text(server.url)
        cores = os.cpu_count() or 2
        children.append(_spawn("trainer", ["train"], server.url, run_dir, log_dir, threads=1))
        children.append(_spawn("gpu-serve", ["gpu-serve"], server.url, run_dir, log_dir, threads=max(1, cores // 2)))
        for i in range(workers):
            children.append(_spawn(f"worker-{i + 1}", ["worker"], server.url, run_dir, log_dir, threads=1))
        console.print(
            f"azjobs run: {stored.game}, {workers} worker(s), {minutes:g} min, run dir {run_dir} (logs in {log_dir})"
        )
        return _watch(client, run_name, children, minutes, console)
    finally:
        _stop(children, console)
        url_file.unlink(missing_ok=True)
        server.stop()


def _watch(client: redis.Redis, run_name: str, children: list[Child], minutes: float, console: Console) -> status.Snapshot:
    started = time.monotonic()
    end = started + minutes * 60
    first = snap = status.collect(client, run_name)
    try:
        with Live(status.render(snap), console=console, refresh_per_second=1) as live:
            while time.monotonic() < end:
                time.sleep(1.0)
                dead = [c.role for c in children if c.process.poll() is not None]
                if dead:
                    raise AzjobsError(f"{', '.join(dead)} exited early; see its log in the run's logs/ folder")
                snap = status.collect(client, run_name)
                elapsed, left = (time.monotonic() - started) / 60, max(0.0, end - time.monotonic()) / 60
                title = f"azjobs run {run_name}: {elapsed:.1f} min, {left:.1f} min left (Ctrl-C stops)"
                bar = ProgressBar(total=minutes, completed=min(elapsed, minutes), width=60)
                live.update(Group(status.render(snap, title=title, previous=first), bar))
    except KeyboardInterrupt:
        console.print("\nstopping: workers, then gpu-serve, then the trainer (it checkpoints)")
    return snap
