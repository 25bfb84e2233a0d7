"""`azjobs run`: the whole system on one machine, with a private embedded Redis.

It starts a redis-server of its own (on a unix socket, so it can't touch any other
Redis), then the same processes a cluster runs, as child processes: one inference
server, N workers and the trainer; it shows a live view until the time is up or
Ctrl-C, then stops them in order. Everything lasting is on the storage root, so running
it again on the same folder resumes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any, Mapping

import redis
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar

from azjobs.cluster import embedded, status
from azjobs.cluster.children import Child, Signals, spawn, stop_in_order
from azjobs.cluster.connection import connect
from azjobs.errors import AzjobsError
from azjobs.run import SETTINGS_FILE, Run
from azjobs.settings import PROCESS_SETTINGS, Settings, overridden, process_settings
from azjobs.storage import lease
from azjobs.storage.atomic import write_with

LOCAL_URL_FILE = ".local-redis-url"  # lets `azjobs status --run-dir` find a running local mode


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19]  # starttime, field 22 of proc(5); a reused pid has another


def write_url_file(run_dir: Path, url: str, pid: int | None = None) -> Path:
    """Say where this `azjobs run`'s Redis is: its URL with the pid, host and start time of its owner, mode 0600."""
    pid = pid or os.getpid()
    text = json.dumps({"url": url, "pid": pid, "host": socket.gethostname(), "started": _process_start(pid)})
    path = Path(run_dir) / LOCAL_URL_FILE

    def fill(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")

    write_with(path, fill)
    return path


def read_url_file(run_dir: Path) -> str | None:
    """The Redis URL of the `azjobs run` live on `run_dir`; None if there is none (no file, or its owner ended).

    The file is honoured only if it is yours, readable by you alone, names a unix socket of yours and a
    live process of this host: a planted or copied file must not send the CLI (and the password) elsewhere.
    """
    path = Path(run_dir) / LOCAL_URL_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _untrusted(path, f"it cannot be opened as a plain file ({e.strerror})") from None
    with os.fdopen(fd) as f:
        info, text = os.fstat(f.fileno()), f.read()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise _untrusted(path, "it is not yours alone (owner or mode other than 0600)")
    try:
        found = json.loads(text)
        url, pid, host = str(found["url"]), int(found["pid"]), str(found["host"])
    except (ValueError, KeyError, TypeError):
        raise _untrusted(path, "it is not what `azjobs run` writes") from None
    if host != socket.gethostname() or not _alive(pid, found.get("started")):
        return None  # its `azjobs run` has ended (or runs on another host): a stale file, not a server
    _check_socket(path, url)
    return url


def _alive(pid: int, started: object) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not the `azjobs run` that wrote a file of ours
    return started is None or _process_start(pid) in (None, started)


def _check_socket(path: Path, url: str) -> None:
    if not url.startswith("unix://"):
        raise _untrusted(path, "it names a network address, and `azjobs run` serves only a unix socket")
    sock = Path(url[len("unix://") :].split("?", 1)[0])
    try:
        info = sock.lstat()
    except OSError:
        raise _untrusted(path, f"its socket {sock} does not exist") from None
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        raise _untrusted(path, f"{sock} is not a unix socket of yours")


def _untrusted(path: Path, why: str) -> AzjobsError:
    return AzjobsError(f"refusing {path}: {why}; delete it, or pass --redis-url")


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


def own_flags(command: str, own: Mapping[str, Any]) -> list[str]:
    """The values of `command`'s process settings in `own`, as that command's flags."""
    return [
        part
        for name in process_settings(command)
        if name in own
        for part in (PROCESS_SETTINGS[name][1], str(own[name]))
    ]


def run(
    settings: Settings,
    run_dir: Path,
    *,
    minutes: float | None,
    max_steps: int | None = None,
    workers: int | None = None,
    console: Console | None = None,
    own: Mapping[str, Any] | None = None,
) -> status.Snapshot:
    """Run everything until `minutes` have passed, the trainer has taken `max_steps` steps in all (it
    stops itself there), or Ctrl-C; None: no such bound. Returns the last status snapshot.

    `own`: values given to this command; its process settings go to the roles that take them."""
    console = console or Console()
    run_dir = Path(run_dir).resolve()
    workers = workers or settings.num_workers or default_workers()
    holder = lease.holder_of(run_dir)  # a second `azjobs run` on this folder would start a second trainer
    if holder is not None:
        raise AzjobsError(lease.busy_message(run_dir.name, holder, str(run_dir / lease.LOCK_FILE)))
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    signals = Signals()
    signals.install()
    server = embedded.start()
    children: list[Child] = []
    url_file = run_dir / LOCAL_URL_FILE
    the_run: Run | None = None
    try:
        the_run = Run.at(run_dir, connect(server.url))
        own = {name: value for name, value in (own or {}).items() if name in PROCESS_SETTINGS}
        stored = _create(the_run, settings, own, console)
        write_url_file(run_dir, server.url)
        _start_roles(children, server.url, run_dir, log_dir, workers, max_steps, own)
        bounds = " or ".join(
            ([] if minutes is None else [f"{minutes:g} min"]) + ([] if max_steps is None else [f"{max_steps} steps"])
        )
        console.print(
            f"azjobs run: {stored.game}, {workers} worker(s), {bounds or 'until Ctrl-C'}, run dir {run_dir} "
            f"(logs in {log_dir})"
        )
        return _watch(the_run, children, minutes, max_steps, console)
    finally:
        signals.stopping = True  # from here on, a signal hurries the teardown instead of breaking it
        stop_in_order(children, console, signals.urgent)
        if the_run is not None and children and not signals.urgent.is_set():
            summarize(the_run.redis, the_run.name, console)
        url_file.unlink(missing_ok=True)
        server.stop(now=signals.urgent.is_set())
        if signals.urgent.is_set():
            raise AzjobsError("stopped at once on a second signal: the trainer resumes from its last checkpoint")


def summarize(client: redis.Redis, run_name: str, console: Console) -> None:
    """The run's summary once its processes have stopped: what evaluation cost the workers."""
    try:
        found = status.evaluation(client, run_name, status.stored_settings(client, run_name))
    except redis.RedisError:
        return  # the run's Redis is gone: nothing to add to what the live view showed
    console.print("azjobs run: " + "; ".join(f"{name}: {value}" for name, value in status.evaluation_lines(found)))


def _create(the_run: Run, settings: Settings, own: Mapping[str, Any], console: Console) -> Settings:
    """Create the run (or resume it, saying so, with its stored settings and this command's own values)."""
    stored = the_run.create(settings)
    if stored != settings:
        console.print(
            f"[yellow]run {the_run.name} exists: resuming with its stored settings ({the_run.folder}/{SETTINGS_FILE})"
        )
        changed = overridden(stored.replace(**own), stored)
        if changed:
            console.print(f"[yellow]this run's own: {changed}")
    return stored


def _start_roles(
    children: list[Child],
    url: str,
    run_dir: Path,
    log_dir: Path,
    workers: int,
    max_steps: int | None,
    own: Mapping[str, Any],
) -> None:
    """Start the trainer, gpu-serve and the workers, each added to `children` as it starts."""
    cores = os.cpu_count() or 2
    steps = ["--max-steps", str(max_steps)] if max_steps is not None else []
    children.append(spawn("trainer", ["train", *steps, *own_flags("train", own)], url, run_dir, log_dir, threads=1))
    serve = ["gpu-serve", *own_flags("gpu-serve", own)]
    children.append(spawn("gpu-serve", serve, url, run_dir, log_dir, threads=max(1, cores // 2)))
    for i in range(workers):
        children.append(spawn(f"worker-{i + 1}", ["worker"], url, run_dir, log_dir, threads=1))


def _watch(
    the_run: Run, children: list[Child], minutes: float | None, max_steps: int | None, console: Console
) -> status.Snapshot:
    client, run_name = the_run.redis, the_run.name
    started = time.monotonic()
    end = started + minutes * 60 if minutes is not None else float("inf")
    first = snap = status.collect(client, run_name)
    try:
        with Live(status.render(snap), console=console, refresh_per_second=1) as live:
            while time.monotonic() < end:
                time.sleep(1.0)
                if max_steps is not None and _trainer_done(children):
                    snap = status.collect(client, run_name)
                    console.print(f"the trainer has taken its {max_steps} steps; stopping")
                    break
                dead = [c.role for c in children if c.process.poll() is not None]
                if dead:
                    raise AzjobsError(f"{', '.join(dead)} exited early; see its log in the run's logs/ folder")
                snap = status.collect(client, run_name)
                live.update(_progress(snap, first, run_name, time.monotonic() - started, minutes, max_steps))
    except KeyboardInterrupt:
        console.print("\nstopping: workers, then gpu-serve, then the trainer (it checkpoints)")
    return snap


def _trainer_done(children: list[Child]) -> bool:
    """The trainer exited on its own, cleanly: with --max-steps, once it has taken them."""
    return any(c.role == "trainer" and c.process.poll() == 0 for c in children)


def _progress(
    snap: status.Snapshot,
    first: status.Snapshot,
    run_name: str,
    seconds: float,
    minutes: float | None,
    max_steps: int | None,
) -> Group:
    """The live view: the status tables, and a bar of the minutes (or, without them, of the steps)."""
    elapsed = seconds / 60
    if minutes is not None:
        title = f"azjobs run {run_name}: {elapsed:.1f} min, {max(0.0, minutes - elapsed):.1f} min left (Ctrl-C stops)"
        bar = ProgressBar(total=minutes, completed=min(elapsed, minutes), width=60)
    else:
        step = int(snap.trainer.get("step", 0))
        title = f"azjobs run {run_name}: {elapsed:.1f} min, step {step} of {max_steps} (Ctrl-C stops)"
        bar = ProgressBar(total=max_steps or 1, completed=min(step, max_steps or 0), width=60)
    return Group(status.render(snap, title=title, previous=first), bar)
