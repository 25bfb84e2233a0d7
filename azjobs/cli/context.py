"""The context object the commands share: the run they name (--run-dir) and the way to its Redis (--redis-url)."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click
import redis

from azjobs.cluster.connection import connect
from azjobs.settings import Settings

if TYPE_CHECKING:
    from azjobs.run import Run  # imported where used: it brings the storage (numpy, h5py)


def say(message: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {message}", err=True)


def run_name(run_dir: Path) -> str:
    return Path(run_dir).resolve().name


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the role finishes its step and tears down."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        say(f"got {signal.Signals(signum).name}: stopping")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@dataclass
class Session:
    """Set by the --run-dir and --redis-url options as click parses them; `ctx.obj` of every command."""

    run_dir: Path | None = None
    redis_url: str | None = None

    @property
    def name(self) -> str:
        """The run's name in Redis: the last component of --run-dir."""
        assert self.run_dir is not None, "a command naming the run takes --run-dir"
        return run_name(self.run_dir)

    @property
    def root(self) -> Path:
        """--run-dir, for a command that takes it (required)."""
        assert self.run_dir is not None, "a command naming the run takes --run-dir"
        return self.run_dir

    def url(self) -> str | None:
        """--redis-url; else that of an `azjobs run` running on --run-dir (its embedded Redis), if one is live."""
        from azjobs.cluster.local_mode import read_url_file

        if self.redis_url is None and self.run_dir is not None:
            return read_url_file(self.run_dir) or None
        return self.redis_url

    def connect(self, *, find_local: bool = False) -> redis.Redis:
        """A client of --redis-url (find_local: else of the `azjobs run` live on --run-dir)."""
        return connect(self.url() if find_local else self.redis_url)

    def run(self, *, find_local: bool = False) -> Run:
        """The run of --run-dir on a client of --redis-url (find_local: else of the `azjobs run` live on it)."""
        from azjobs.run import Run

        return Run.at(self.root, self.connect(find_local=find_local))

    def create(self, settings: Settings, *, device: str | None = None) -> tuple[Run, Settings]:
        """Connect and create the run (or join it, if it exists); then (run, the settings it holds)."""
        run = self.run()
        stored = run.create(settings)
        self.note_facts(run, stored, cuda=True, device=device)
        return run, stored

    def join(self, *, cuda: bool = False, device: str | None = None) -> tuple[Run, Settings]:
        """Connect and wait (saying so) until the run exists; then (run, its settings)."""
        run = self.run()
        found = run.join(say)
        self.note_facts(run, found, cuda=cuda, device=device)
        return run, found

    def note_facts(self, run: Run, settings: Settings, *, cuda: bool = False, device: str | None = None) -> None:
        """What this process found on joining, sent with its heartbeats for `azjobs doctor`."""
        from azjobs.cluster import doctor, heartbeat

        heartbeat.FACTS.update(doctor.facts(run, settings, cuda=cuda, device=device))


pass_session = click.make_pass_decorator(Session, ensure=True)


def session_setter(field: str) -> Callable[[click.Context, click.Parameter, object], object]:
    """An option callback that stores the option's value on the Session."""

    def store(ctx: click.Context, param: click.Parameter, value: object) -> object:
        setattr(ctx.ensure_object(Session), field, value)
        return value

    return store
