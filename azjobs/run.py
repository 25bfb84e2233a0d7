"""The run: its name, its folder on the storage root and its Redis, as every role and command creates or joins it.

A run is named by its folder's last component; its settings live in Redis under `keys.settings(name)`
and in `<folder>/settings.toml`, the lasting copy (see docs/design.md, Run settings). This module
resolves a new run's settings, publishes them (creating the run's storage marker) and fetches them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis import Redis

from azjobs import keys
from azjobs.cluster.connection import wait_for
from azjobs.errors import AzjobsError
from azjobs.games import get_game
from azjobs.settings import Settings, SettingsError, coerce, given, load_toml, to_toml
from azjobs.storage import marker
from azjobs.storage.atomic import write_atomic, write_with
from azjobs.storage.replay import rebuild_index

if TYPE_CHECKING:
    from azjobs.storage.weights import WeightStore

SETTINGS_FILE = "settings.toml"


@dataclass(frozen=True)
class Run:
    name: str
    folder: Path | None  # None where a command works from Redis alone
    redis: Redis

    @classmethod
    def at(cls, folder: Path, redis: Redis) -> Run:
        """The run whose folder is `folder` (named by its last component)."""
        return cls(Path(folder).resolve().name, Path(folder), redis)

    def create(self, settings: Settings) -> Settings:
        """Create the run with `settings` (its settings published, its marker made), or join it if it
        exists; the settings it holds (an existing run keeps those it was created with)."""
        assert self.folder is not None, "a run is created on its folder"
        return publish(self.redis, self.name, self.folder, settings)

    def settings(self) -> Settings | None:
        """The run's settings (from Redis, else the storage root, restoring Redis); None before it exists."""
        return fetch(self.redis, self.name, self.folder)

    def join(self, say: Callable[[str], None] | None = None) -> Settings:
        """The settings of the existing run; with `say`, wait (saying so once) until it exists, else
        AzjobsError if it does not."""
        if say is not None:
            return self.wait(say)
        found = self.settings()
        if found is None:
            raise AzjobsError(f"no run {self.name!r} in this Redis: start `azjobs train` or `azjobs run` for it first")
        return found

    def wait(self, say: Callable[[str], None], poll_s: float = 1.0) -> Settings:
        """Block until the run exists, saying so once; then its settings."""
        waiting = f"waiting for run {self.name!r} to be created (start `azjobs train` or `azjobs run` for it)"
        found = wait_for(self.settings, say, waiting, poll_s=poll_s)
        assert found is not None  # no stop event: it waits until the run exists
        return found

    def restore(self, settings: Settings, store: WeightStore, log: Callable[[str], None] = print) -> bool:
        """If Redis no longer knows the run (restarted empty), put back its settings, marker, newest weights
        and shard index from the storage root; whether it did."""
        if self.redis.exists(keys.settings(self.name)):
            return False
        assert self.folder is not None, "a run is restored from its folder"
        self.create(settings)
        version = store.latest_version()  # the newest file goes back into Redis
        shards = rebuild_index(self.redis, self.name, self.folder)  # and with it the games and positions counters
        log(
            f"Redis had lost run {self.name!r} (restarted empty?): restored its settings, weights version {version} "
            f"and {shards} replay shards from the storage root"
        )
        return True


def game_defaults(game: str) -> dict[str, Any]:
    """The game's own defaults; SettingsError naming the known games if there is no such game."""
    try:
        found = get_game(game)
    except ValueError as e:  # get_game's message already names the known games
        raise SettingsError(f"setting game: {e}") from None
    return dict(found.default_settings)


def resolve(
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings for a new run: defaults < game defaults < file < environment < flags."""
    return from_given(given(config_file, flags, environ))


def from_given(merged: Mapping[str, Any]) -> Settings:
    """Settings for a new run from the values `given` found: the game's defaults below them."""
    game = merged.get("game", Settings.game)
    values = coerce(game_defaults(game), f"defaults of game {game}")
    values.update(merged)
    return Settings(**values)


def read_file(run_dir: Path) -> Settings | None:
    """The settings in `<run_dir>/settings.toml`; None if there is none, SettingsError if it is damaged."""
    path = Path(run_dir) / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        values = load_toml(path, "the run's settings file")
        if "game" not in values:
            raise SettingsError(f"the run's settings file {path} names no game")
        return Settings.from_mapping(values, str(path))
    except SettingsError as e:
        raise SettingsError(
            f"{e}; the file is damaged: restore it from a backup, or, while the run's Redis "
            f"still holds them, print them with `azjobs settings --run-dir {run_dir} "
            f"--redis-url URL`"
        ) from None


def write_file(run_dir: Path, settings: Settings) -> None:
    """Write `<run_dir>/settings.toml` atomically (temporary name, then rename)."""
    write_atomic(Path(run_dir) / SETTINGS_FILE, to_toml(settings).encode())


def create_file(run_dir: Path, settings: Settings) -> Settings:
    """Write `<run_dir>/settings.toml` unless it exists; the settings the file holds then (of two
    creators at once, exactly one writes it, and both return what it wrote)."""
    write_with(Path(run_dir) / SETTINGS_FILE, lambda tmp: tmp.write_text(to_toml(settings)), replace=False)
    stored = read_file(run_dir)
    assert stored is not None  # it landed, ours or the other creator's
    return stored


def publish(redis: Redis, run: str, run_dir: Path, settings: Settings) -> Settings:
    """Store a new run's settings and make its marker; an existing run keeps the settings it was created with.

    Atomic against a second creator: the first SET NX in Redis wins, the file is written (once) from
    the winner, and the file, the run's lasting copy, is what Redis holds in the end and what is returned."""
    stored = read_file(run_dir)
    if stored is None:
        redis.set(keys.settings(run), settings.to_json(), nx=True)
        raw = redis.get(keys.settings(run))
        stored = create_file(run_dir, Settings.from_json(raw) if raw is not None else settings)
    raw = redis.get(keys.settings(run))
    if raw is None or Settings.from_json(raw) != stored:
        redis.set(keys.settings(run), stored.to_json())  # e.g. another Redis' creator wrote the file first
    marker.ensure(redis, run, Path(run_dir))  # workers refuse a run folder without the run's marker
    return stored


def fetch(redis: Redis, run: str, run_dir: Path | None = None) -> Settings | None:
    """The run's settings from Redis, else from the storage root (restoring Redis); None if no run."""
    raw = redis.get(keys.settings(run))
    if raw is not None:
        try:
            return Settings.from_json(raw)
        except SettingsError as e:
            raise SettingsError(f"{e} (key {keys.settings(run)})") from None
    stored = read_file(run_dir) if run_dir is not None else None
    if stored is not None:
        redis.set(keys.settings(run), stored.to_json(), nx=True)
    return stored
