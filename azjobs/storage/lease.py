"""One trainer per run: a lock file on the storage root and a lease in Redis, both naming the holder.

The lock file `<run_dir>/trainer.lock` is held with `flock` for the trainer's life (the kernel, or
the NFS server, drops it when the process dies) and names its host and pid. The lease
`azjobs:<run>:trainer:lease` is set with NX and an expiry on Redis' own clock, and renewed by a thread
while its token is still the one stored; it guards runs whose folder is not one shared file system
(or one without lock support). A second trainer is refused with a message naming the first.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import redis

from azjobs import keys
from azjobs.errors import AzjobsError
from azjobs.storage.atomic import host

if TYPE_CHECKING:
    from redis import Redis

LOCK_FILE = "trainer.lock"
LEASE_TTL_S = 30.0  # a trainer that stops renewing (killed, partitioned) frees the run after this
RENEW_EVERY_S = 5.0
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}

# KEYS: the lease. ARGV: our value, ttl ms. Renew while ours; take it again if Redis lost it (restarted).
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] or not held then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class TrainerBusyError(AzjobsError):
    """Another trainer holds the run."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, text: str | bytes) -> Holder | None:
        try:
            d = json.loads(text)
            return cls(str(d["host"]), int(d["pid"]), str(d.get("token", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def here_and_dead(self) -> bool:
        if self.host != host():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def busy_message(run: str, holder: Holder | None, where: str, *, lease: bool = False) -> str:
    who = f"{holder.host} pid {holder.pid}" if holder else "another process"
    message = (
        f"run {run!r} already has a trainer: {who} holds {where}; stop that one first (two trainers "
        f"would overwrite each other's weights)"
    )
    if lease:
        message += f", or if it died on another machine, start again in {LEASE_TTL_S:g} s when its lease expires"
    return message


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder.parse(path.read_bytes())
    except OSError:
        return None


def _lock_file(run: str, run_dir: Path, me: Holder) -> int | None:
    """Hold `<run_dir>/trainer.lock` for this process; its fd (None where the mount has no locks)."""
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TrainerBusyError(busy_message(run, _read_holder(path), str(path))) from None
    except OSError as e:
        if e.errno not in _NO_LOCKS:
            os.close(fd)
            raise
        holder = _read_holder(path)  # no locks on this mount: the file's word, for a holder on this host
        os.close(fd)
        if holder and holder.host == me.host and holder.pid != os.getpid() and not holder.here_and_dead():
            raise TrainerBusyError(busy_message(run, holder, str(path))) from None
        _write_holder(path, me)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, me.to_json().encode(), 0)
    os.fsync(fd)
    return fd


def _write_holder(path: Path, me: Holder) -> None:
    with open(path, "w") as f:
        f.write(me.to_json())


def holder_of(run_dir: Path) -> Holder | None:
    """Who holds `<run_dir>/trainer.lock` now (a live trainer on a mount with locks), or None."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path) or Holder("unknown host", 0)
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops a lock it got
    return None


class TrainerLease:
    """The run's lock file and Redis lease, held by this trainer; `lost` says why if it lost them."""

    def __init__(self, client: Redis, run: str, me: Holder, fd: int | None, ttl_s: float) -> None:
        self.client, self.run, self.me, self.fd, self.ttl_s = client, run, me, fd, ttl_s
        self.lost = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls,
        client: Redis,
        run: str,
        run_dir: Path,
        *,
        ttl_s: float = LEASE_TTL_S,
        log: Callable[[str], None] = print,
        poll_s: float = 1.0,
    ) -> TrainerLease:
        """Take the run for this process, or TrainerBusyError naming who has it.

        A lease left by a trainer that died on this host is taken over at once; one held from another
        host is waited out for `ttl_s` (a dead holder's expires), and refused if it is still renewed."""
        me = Holder(host(), os.getpid(), secrets.token_hex(8))
        fd = _lock_file(run, run_dir, me)
        lease = cls(client, run, me, fd, ttl_s)
        try:
            lease._take(log, poll_s)
        except BaseException:
            lease._unlock()
            raise
        return lease

    def _take(self, log: Callable[[str], None], poll_s: float) -> None:
        key, deadline, said = keys.trainer_lease(self.run), time.monotonic() + self.ttl_s + poll_s, False
        while not self.client.set(key, self.me.to_json(), nx=True, px=int(self.ttl_s * 1000)):
            raw = self.client.get(key)
            holder = Holder.parse(raw) if raw is not None else None
            if raw is not None and (holder is None or holder.here_and_dead()):
                self.client.register_script(_RELEASE)(keys=[key], args=[raw])  # its holder is gone
                continue
            if holder is not None and (holder.host == self.me.host or time.monotonic() > deadline):
                raise TrainerBusyError(busy_message(self.run, holder, f"its lease in Redis ({key})", lease=True))
            if holder is not None and not said:
                log(
                    f"trainer: run {self.run!r} is leased to {holder.host} pid {holder.pid}; waiting up to "
                    f"{self.ttl_s:g} s for the lease to expire"
                )
                said = True
            time.sleep(poll_s)

    def renew(self) -> bool:
        """Extend the lease; False if another trainer holds the run now (this one must stop)."""
        script = self.client.register_script(_RENEW)
        return bool(script(keys=[keys.trainer_lease(self.run)], args=[self.me.to_json(), int(self.ttl_s * 1000)]))

    def keep(self, stop: threading.Event, every_s: float = RENEW_EVERY_S) -> None:
        """Renew in a thread until released; on losing the lease set `lost` and `stop`."""

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    if self.renew():
                        continue
                    raw = self.client.get(keys.trainer_lease(self.run))
                except redis.RedisError:
                    continue  # Redis away: nobody else can take the lease meanwhile; try again
                holder = Holder.parse(raw) if raw is not None else None
                self.lost = (
                    busy_message(
                        self.run, holder, "the run's lease in Redis, taken while this trainer could not renew it"
                    )
                    + "; this trainer stopped"
                )
                stop.set()
                return

        self._thread = threading.Thread(target=loop, name="trainer-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the run up (the lease, if still ours, and the lock file)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.client.register_script(_RELEASE)(keys=[keys.trainer_lease(self.run)], args=[self.me.to_json()])
        except redis.RedisError:
            pass  # it expires by itself
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the flock; the file stays (deleting it would race the next locker)
            self.fd = None
