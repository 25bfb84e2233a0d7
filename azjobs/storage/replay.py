"""The replay store: the shard index in Redis and the trainer's in-memory window of newest positions."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from azjobs import keys
from azjobs.game_records import GameRecords
from azjobs.games.base import Game
from azjobs.storage.shards import (
    ShardError,
    ShardInfo,
    TransientShardError,
    is_shard_name,
    read_shard,
    read_shard_info,
)
from azjobs.storage.targets import (
    TargetSettings,
    WindowTargets,
    find_duplicates,
    merge,
    mixed_values,
    position_hashes,
    surprise_cdf,
)

if TYPE_CHECKING:
    from redis import Redis

REPLAY_DIR = "replay"
BAD_DIR = "bad"  # <run_dir>/replay/bad/: shards that failed validation, kept for a look
READ_BACKOFF_S = (0.2, 0.5, 1.0)  # waits between the tries of a read that failed for a transient reason
TRANSIENT_REFRESHES = 5  # refreshes a shard may fail transiently (after its retries) before it is set aside

# KEYS: registered set, index list, stats hash. ARGV: name, record JSON, games, positions, force, then
# counter/increment pairs. A name registers once (unless forced: the caller saw it missing from the
# index): the index entry and every counter move together.
_REGISTER = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 and ARGV[5] ~= '1' then
    return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'games', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'positions', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'shards', 1)
for i = 6, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
return 1
"""

# Same KEYS; ARGV: name. Takes a set-aside shard out of the index and the counters; 1 if it was in.
_UNREGISTER = """
local needle = '"name": ' .. cjson.encode(ARGV[1])
for _, raw in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    if string.find(raw, needle, 1, true) then
        local info = cjson.decode(raw)
        if info['name'] == ARGV[1] then
            redis.call('LREM', KEYS[2], 1, raw)
            redis.call('SREM', KEYS[1], ARGV[1])
            redis.call('HINCRBY', KEYS[3], 'games', -info['games'])
            redis.call('HINCRBY', KEYS[3], 'positions', -info['positions'])
            redis.call('HINCRBY', KEYS[3], 'shards', -1)
            redis.call('HINCRBY', KEYS[3], 'shards_set_aside', 1)
            return 1
        end
    end
end
return 0
"""


def replay_dir(run_dir: Path) -> Path:
    return Path(run_dir) / REPLAY_DIR


def shard_names(directory: Path) -> list[str]:
    """Finished shard files in `directory`, oldest first (names sort by time); [] if it is missing."""
    try:
        return sorted(name for name in os.listdir(directory) if is_shard_name(name))
    except FileNotFoundError:
        return []


def _index_keys(run: str) -> list[str]:
    return [keys.shards_registered(run), keys.shards(run), keys.stats(run)]


def register_shard(
    redis: Redis, run: str, info: ShardInfo, counters: Mapping[str, int] | None = None, *, force: bool = False
) -> bool:
    """Add a written shard to the run's index and counters (plus `counters`), all or nothing, once:
    False (and nothing changed) if a shard of that name is registered already, unless `force`."""
    extra = [str(x) for name, value in (counters or {}).items() for x in (name, int(value))]
    script = redis.register_script(_REGISTER)
    args = [info.name, info.to_json(), info.games, info.positions, "1" if force else "0", *extra]
    return bool(script(keys=_index_keys(run), args=args))


def is_registered(redis: Redis, run: str, name: str) -> bool:
    return bool(redis.sismember(keys.shards_registered(run), name))


def unregister_shard(redis: Redis, run: str, name: str) -> bool:
    """Take a shard out of the index and its games and positions out of the counters; whether it was in."""
    return bool(redis.register_script(_UNREGISTER)(keys=_index_keys(run), args=[name]))


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
        # Forced only where the set of names outlived the list: a worker registering it meanwhile wins.
        added += register_shard(redis, run, info, force=is_registered(redis, run, name))
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
    """The newest `capacity` positions of the run, as preallocated ring arrays, sampled uniformly
    unless `targets` asks for surprise weighting (and for mixed value targets or merged duplicates)."""

    def __init__(
        self,
        run_dir: Path,
        game: Game,
        *,
        capacity: int,
        rng: np.random.Generator,
        log: Callable[[str], None] = print,
        on_set_aside: Callable[[str], object] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        targets: TargetSettings = TargetSettings(),
    ) -> None:
        """`on_set_aside(name)` runs before a bad shard is moved aside (the trainer takes it out of the
        counters there); if it raises, the shard stays, to be tried again."""
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
        self.root_value = np.zeros(capacity, dtype=np.float32)  # [cap] the search's value, for the player to move
        self.surprise = np.zeros(capacity, dtype=np.float32)  # [cap] KL(policy target || prior)
        self.hashes = np.zeros(capacity, dtype=np.uint64)  # [cap] of the planes, while merging duplicates
        self.targets = targets
        self._window_cache: tuple[tuple[int, int], WindowTargets] | None = None  # (total_added, rows) -> it
        self.size = 0  # valid rows: [0, size) until the ring first wraps, then all of them
        self.total_added = 0  # positions ever added, including those since pushed out
        self._next = 0  # ring row the next position goes to
        self._seen: set[str] = set()  # shard names loaded, set aside, or skipped as too old
        self._transient: dict[str, int] = {}  # shard name -> refreshes it failed to read for a transient reason
        self.on_set_aside = on_set_aside
        self.sleep = sleep

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
        try:
            records = self._read(path)
        except TransientShardError as e:
            failures = self._transient[path.name] = self._transient.get(path.name, 0) + 1
            if failures < TRANSIENT_REFRESHES:
                self._seen.discard(path.name)  # not bad, perhaps: the next refresh tries it again
                self.log(f"warning: {e}; trying it again later")
                return False
            self._set_aside(path, e)
            return False
        except ShardError as e:
            self._set_aside(path, e)
            return False
        self._transient.pop(path.name, None)
        self._append(records)
        return True

    def _read(self, path: Path) -> GameRecords:
        """Read a shard, trying again after a short wait while the error is a transient one."""
        game = self.game
        for wait in (*READ_BACKOFF_S, None):
            try:
                return read_shard(path, game=game.name, planes_shape=game.planes_shape, num_actions=game.num_actions)
            except TransientShardError:
                if wait is None:
                    raise
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _set_aside(self, path: Path, error: ShardError) -> None:
        if self.on_set_aside is not None:
            try:
                self.on_set_aside(path.name)
            except BaseException:
                self._seen.discard(path.name)
                raise
        self._transient.pop(path.name, None)
        bad_dir = path.parent / BAD_DIR
        try:
            bad_dir.mkdir(exist_ok=True)
            os.replace(path, bad_dir / path.name)
            self.log(f"warning: {error}; moved it to {bad_dir}")
        except OSError as e:
            self.log(f"warning: {error}; skipped it (could not move it aside: {e.strerror})")

    def _append(self, records: GameRecords) -> None:
        """Write rows into the ring after the newest; only the last `capacity` of them can stay."""
        n = records.positions
        self.total_added += n
        keep = min(n, self.capacity)
        first = min(keep, self.capacity - self._next)  # rows before the ring's end, the rest wrap to 0
        columns: list[tuple[np.ndarray, np.ndarray]] = [
            (self.planes, records.planes),
            (self.policy, records.policy),
            (self.value, records.value),
            (self.policy_weight, records.policy_weight),
            (self.root_value, records.root_value),
            (self.surprise, records.policy_surprise),
        ]
        if self.targets.merge_weight > 0:
            columns.append((self.hashes, position_hashes(records.planes[n - keep :])))
        for ring, rows in columns:
            rows = rows[len(rows) - keep :]
            ring[self._next : self._next + first] = rows[:first]
            ring[: keep - first] = rows[first:]
        self._next = (self._next + keep) % self.capacity
        self.size = min(self.capacity, self.size + keep)

    def sample(self, batch_size: int, window: int | None = None) -> tuple[np.ndarray, ...]:
        """A batch from the newest `window` positions (default: all held), each under a random board
        symmetry: uniform, or weighted by policy surprise; its targets mixed and merged as `targets` says.

        Returns planes `[B, C, H, W]` uint8, policy `[B, A]` float32, value `[B]` float32 and
        policy_weight `[B]` float32 (0 where the policy is no training target).
        """
        if self.size == 0:
            raise ValueError("the replay buffer is empty: refresh() it once shards exist")
        if not self.targets.plain:
            planes, policy, value, weight = self._sample_targets(batch_size, window)
        else:
            if window is None or window >= self.size:
                rows = self.rng.integers(0, self.size, size=batch_size)  # every held row is in the window
            else:
                # The newest row is just before the ring's next write position.
                rows = (self._next - 1 - self.rng.integers(0, max(window, 1), size=batch_size)) % self.capacity
            planes, policy, value = self.planes[rows], self.policy[rows], self.value[rows]
            weight = self.policy_weight[rows]
        symmetries = self.rng.integers(0, self.game.num_symmetries, size=batch_size)
        for k in np.unique(symmetries):
            if k == 0:
                continue  # identity
            chosen = symmetries == k
            planes[chosen], policy[chosen] = self.game.symmetry(int(k), planes[chosen], policy[chosen])
        return planes, policy, value, weight

    def _sample_targets(self, batch_size: int, window: int | None) -> tuple[np.ndarray, ...]:
        """`sample`'s rows and targets (before symmetries) when `targets` has something to do."""
        view = self.window_targets(window)
        picked = view.draw(batch_size, self.rng)  # [B] rows of the window
        rows = view.rows[picked]
        planes, policy, weight = self.planes[rows], self.policy[rows], self.policy_weight[rows]
        value = view.value[picked]
        if view.duplicates is not None:
            merge(view.duplicates, picked, policy, value, weight, self.targets.merge_weight)
        return planes, policy, value, weight

    def window_targets(self, window: int | None = None) -> WindowTargets:
        """The newest `window` rows' targets and sampling weights, made again only when new data landed
        or the window moved."""
        count = self.size if window is None else max(1, min(window, self.size))
        key = (self.total_added, count)
        if self._window_cache is not None and self._window_cache[0] == key:
            return self._window_cache[1]
        t = self.targets
        rows = (self._next - 1 - np.arange(count)) % self.capacity  # [W] the newest first
        value = mixed_values(self.value[rows], self.root_value[rows], t.q_weight)
        duplicates = None
        if t.merge_weight > 0:
            duplicates = find_duplicates(self.hashes[rows], value, self.policy, self.policy_weight, rows)
        cdf = surprise_cdf(self.surprise[rows], t.surprise_weight) if t.surprise_weight > 0 else None
        view = WindowTargets(rows, value, duplicates, cdf)
        self._window_cache = (key, view)
        return view
