"""The replay store: the shard index in Redis and the trainer's in-memory window of newest positions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from azjobs import keys
from azjobs.games.base import Game
from azjobs.storage.shards import ShardError, ShardInfo, is_shard_name, read_shard, read_shard_info

if TYPE_CHECKING:
    from redis import Redis

REPLAY_DIR = "replay"
BAD_DIR = "bad"  # <run_dir>/replay/bad/: shards that failed validation, kept for a look


def replay_dir(run_dir: Path) -> Path:
    return Path(run_dir) / REPLAY_DIR


def shard_names(directory: Path) -> list[str]:
    """Finished shard files in `directory`, oldest first (names sort by time); [] if it is missing."""
    try:
        return sorted(name for name in os.listdir(directory) if is_shard_name(name))
    except FileNotFoundError:
        return []


def register_shard(redis: Redis, run: str, info: ShardInfo) -> None:
    """Add a written shard to the run's index and counters, all or nothing."""
    pipe = redis.pipeline(transaction=True)
    pipe.rpush(keys.shards(run), info.to_json())
    pipe.hincrby(keys.stats(run), "games", info.games)
    pipe.hincrby(keys.stats(run), "positions", info.positions)
    pipe.hincrby(keys.stats(run), "shards", 1)
    pipe.execute()


def list_shards(redis: Redis, run: str) -> list[ShardInfo]:
    """The run's shard index, oldest first."""
    return [ShardInfo.from_json(raw) for raw in redis.lrange(keys.shards(run), 0, -1)]


def rebuild_index(redis: Redis, run: str, run_dir: Path) -> int:
    """Register the shards on disk that the index lacks (after Redis lost it); how many were added.

    Reads attributes only. Unreadable shards are left for `ReplayBuffer` to set aside.
    """
    # List the disk first: a shard a worker writes and registers meanwhile is then seen in the index.
    on_disk = shard_names(replay_dir(run_dir))
    indexed = {info.name for info in list_shards(redis, run)}
    added = 0
    for name in on_disk:
        if name in indexed:
            continue
        try:
            info = read_shard_info(replay_dir(run_dir) / name)
        except ShardError:
            continue
        register_shard(redis, run, info)
        added += 1
    return added


def powerlaw_window(total_rows: int, min_rows: int, exponent: float, expand: float) -> int:
    """KataGo's replay window for a run that has made `total_rows` positions (its shuffle.py).

    All the data up to `min_rows` (c); beyond, c * (1 + expand * ((N / c) ** exponent - 1) / exponent):
    the window first grows by `expand` rows per new position, then ever more slowly (a power law),
    so early positions from a weak network leave the window soon while later ones stay longer.
    """
    if total_rows <= min_rows:
        return max(total_rows, 0)
    c = float(min_rows)
    return int(c * (1 + expand * ((total_rows / c) ** exponent - 1) / exponent))


class ReplayBuffer:
    """The newest `capacity` positions of the run, as preallocated ring arrays, sampled uniformly."""

    def __init__(
        self,
        run_dir: Path,
        game: Game,
        *,
        capacity: int,
        rng: np.random.Generator,
        log: Callable[[str], None] = print,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1, got {capacity}")
        self.dir = replay_dir(run_dir)
        self.game = game
        self.capacity = capacity
        self.rng = rng
        self.log = log
        self.planes = np.zeros((capacity, *game.planes_shape), dtype=np.uint8)  # [cap, C, H, W]
        self.policy = np.zeros((capacity, game.num_actions), dtype=np.float32)  # [cap, A]
        self.value = np.zeros(capacity, dtype=np.float32)  # [cap]
        self.policy_weight = np.zeros(capacity, dtype=np.float32)  # [cap] 1: the policy is a training target
        self.size = 0  # valid rows: [0, size) until the ring first wraps, then all of them
        self.total_added = 0  # positions ever added, including those since pushed out
        self._next = 0  # ring row the next position goes to
        self._seen: set[str] = set()  # shard names loaded, set aside, or skipped as too old

    def refresh(self) -> int:
        """Load the shards not seen yet, oldest first; the number of positions added.

        The first call that finds shards loads only as many of the newest as fill the window.
        """
        first = not self._seen
        names = [name for name in shard_names(self.dir) if name not in self._seen]
        if first:
            names = self._newest_filling_window(names)
        before = self.total_added
        for name in names:
            self.add_shard(self.dir / name)
        return self.total_added - before

    def _newest_filling_window(self, names: list[str]) -> list[str]:
        """The newest of `names` whose positions fill the window; the older ones are marked seen."""
        total = 0
        for i in range(len(names) - 1, -1, -1):
            try:
                total += read_shard_info(self.dir / names[i]).positions
            except ShardError:
                continue  # add_shard sets it aside
            if total >= self.capacity:
                self._seen.update(names[:i])
                return names[i:]
        return names

    def add_shard(self, path: Path) -> bool:
        """Append one shard's positions; a bad shard is moved to replay/bad/ with a warning (False)."""
        path = Path(path)
        self._seen.add(path.name)
        game = self.game
        try:
            records = read_shard(path, game=game.name, planes_shape=game.planes_shape, num_actions=game.num_actions)
        except ShardError as e:
            self._set_aside(path, e)
            return False
        self._append(records.planes, records.policy, records.value, records.policy_weight)
        return True

    def _set_aside(self, path: Path, error: ShardError) -> None:
        bad_dir = path.parent / BAD_DIR
        try:
            bad_dir.mkdir(exist_ok=True)
            os.replace(path, bad_dir / path.name)
            self.log(f"warning: {error}; moved it to {bad_dir}")
        except OSError as e:
            self.log(f"warning: {error}; skipped it (could not move it aside: {e.strerror})")

    def _append(self, planes: np.ndarray, policy: np.ndarray, value: np.ndarray, policy_weight: np.ndarray) -> None:
        """Write rows into the ring after the newest; only the last `capacity` of them can stay."""
        n = len(value)
        self.total_added += n
        keep = min(n, self.capacity)
        first = min(keep, self.capacity - self._next)  # rows before the ring's end, the rest wrap to 0
        for ring, rows in ((self.planes, planes), (self.policy, policy), (self.value, value),
                           (self.policy_weight, policy_weight)):
            rows = rows[n - keep :]
            ring[self._next : self._next + first] = rows[:first]
            ring[: keep - first] = rows[first:]
        self._next = (self._next + keep) % self.capacity
        self.size = min(self.capacity, self.size + keep)

    def sample(self, batch_size: int, window: int | None = None) -> tuple[np.ndarray, ...]:
        """A uniform batch from the newest `window` positions (default: all held), each under a
        random board symmetry.

        Returns planes `[B, C, H, W]` uint8, policy `[B, A]` float32, value `[B]` float32 and
        policy_weight `[B]` float32 (0 where the policy is no training target).
        """
        if self.size == 0:
            raise ValueError("the replay buffer is empty: refresh() it once shards exist")
        if window is None or window >= self.size:
            rows = self.rng.integers(0, self.size, size=batch_size)  # every held row is in the window
        else:
            # The newest row is just before the ring's next write position.
            rows = (self._next - 1 - self.rng.integers(0, max(window, 1), size=batch_size)) % self.capacity
        planes, policy, value, weight = self.planes[rows], self.policy[rows], self.value[rows], self.policy_weight[rows]
        symmetries = self.rng.integers(0, self.game.num_symmetries, size=batch_size)
        for k in np.unique(symmetries):
            if k == 0:
                continue  # identity
            chosen = symmetries == k
            planes[chosen], policy[chosen] = self.game.symmetry(int(k), planes[chosen], policy[chosen])
        return planes, policy, value, weight
