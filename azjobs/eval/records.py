"""Evaluation results, kept twice: a JSON file each under `<run_dir>/evals/` and a list entry in Redis.

The files are the lasting copy (Redis may be an embedded one that is gone when `azjobs run`
ends); `rebuild` puts back into Redis what it lacks. Ratings are refitted from all match
records and written to the `ratings` hash and to `evals/ratings.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

from azjobs import keys
from azjobs.cluster.connection import as_text
from azjobs.eval import ratings
from azjobs.eval.match import MatchRecord
from azjobs.net.weights import read_metadata
from azjobs.storage.atomic import write_atomic
from azjobs.storage.weights import WEIGHTS_DIR, file_name, versions_in

if TYPE_CHECKING:
    from redis import Redis

EVALS_DIR = "evals"
POSITIONS_FILE = "positions.jsonl"  # the run's copy of its labelled positions (setting eval_positions)
RATINGS_FILE = "ratings.json"
PLOT_FILE = "strength.png"


def evals_dir(run_dir: Path) -> Path:
    return Path(run_dir) / EVALS_DIR


COUNTS = ("version", "step", "samples_trained", "games_made", "positions_made")  # integer metadata of a version


def version_info(meta: Mapping[str, str]) -> dict[str, float]:
    """What a weights version's metadata says about its training: version, step, train_seconds,
    samples_trained, and the games and positions the run had made when it was published (weights
    published before 2026-12-02 lack these two)."""
    info: dict[str, float] = {}
    for name in COUNTS:
        if name in meta:
            info[name] = int(meta[name])
    if "train_seconds" in meta:
        info["train_seconds"] = float(meta["train_seconds"])
    return info


def published(run_dir: Path) -> list[dict[str, float]]:
    """The version_info of every weights version on the storage root, oldest first (headers read only)."""
    folder = Path(run_dir) / WEIGHTS_DIR
    return [{**version_info(_file_metadata(folder / file_name(v))), "version": v} for v in versions_in(folder)]


def newest_within(versions: list[dict[str, float]], key: str, limit: float) -> dict[str, float] | None:
    """The newest of `versions` (version_info, oldest first) whose `key` (train_seconds, positions_made)
    is at most `limit`; None if none is (versions without the key never are)."""
    found = None
    for info in versions:
        if key in info and info[key] <= limit:
            found = info
    return found


def version_at(run_dir: Path, minutes: float) -> tuple[int, float] | None:
    """The newest version published within `minutes` of the trainer's wall time, and its seconds; None if none was."""
    found = newest_within(published(run_dir), "train_seconds", minutes * 60)
    return None if found is None else (int(found["version"]), found["train_seconds"])


def _file_metadata(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        return read_metadata(head + f.read(size))


@dataclass(frozen=True)
class AccuracyRecord:
    """One player scored on the run's labelled positions (see `azjobs.eval.strength`)."""

    id: str
    time: float
    player: str
    sims: int
    positions: int
    weak_accuracy: float
    strong_accuracy: float
    phases: dict[str, dict[str, float]]
    random_weak_accuracy: float
    seconds: float
    version: dict[str, float] = field(default_factory=dict)  # version_info of a net player

    kind = "accuracy"

    @classmethod
    def of(
        cls, strength: Mapping[str, Any], *, player: str, sims: int, version: dict[str, float], id: str | None = None
    ) -> AccuracyRecord:
        fields = {k: v for k, v in strength.items() if k in cls.__dataclass_fields__}
        fields.update(player=player, sims=sims, version=version)
        return cls(id=id or uuid.uuid4().hex, time=time.time(), **fields)


Record = TypeVar("Record", MatchRecord, AccuracyRecord)


def to_json(record: MatchRecord | AccuracyRecord) -> str:
    return json.dumps(dataclasses.asdict(record), sort_keys=True)


def from_json(cls: type[Record], text: str | bytes) -> Record:
    data = json.loads(text)
    return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _list_key(cls: type, run: str) -> str:
    return keys.matches(run) if cls is MatchRecord else keys.accuracy(run)


# KEYS: recorded ids, the kind's list. ARGV: id, record JSON, force. An id is appended once (unless
# forced: the caller saw it missing from the list).
_APPEND_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 or ARGV[3] == '1' then
    redis.call('RPUSH', KEYS[2], ARGV[2])
    return 1
end
return 0
"""


def _append_once(client: Redis, run: str, record: MatchRecord | AccuracyRecord, force: bool = False) -> bool:
    script = client.register_script(_APPEND_ONCE)
    args = [record.id, to_json(record), "1" if force else "0"]
    return bool(script(keys=[keys.evals_recorded(run), _list_key(type(record), run)], args=args))


def landed(run_dir: Path, cls: type[Record], id: str) -> Record | None:
    """The record of this id on the storage root (an earlier run of the same job saved it), or None."""
    found = (_load(cls, path) for path in _files(run_dir, cls, f"-{id}.json"))
    return next((record for record in found if record is not None), None)


def save(client: Redis | None, run: str, run_dir: Path, record: Record) -> Path:
    """Write the record's file (atomically), then append it to the run's list in Redis (if given;
    without, the trainer puts it there when it next starts). Once per id: a record whose id is on
    the storage root already is not written again, and an id already in Redis is not appended again."""
    earlier = landed(run_dir, type(record), record.id)
    record = earlier or record
    path = evals_dir(run_dir) / f"{record.kind}-{int(record.time * 1000):015d}-{record.id}.json"
    if earlier is None:
        write_atomic(path, to_json(record).encode())
    if client is not None:
        _append_once(client, run, record)
    return path


def read(client: Redis, run: str, cls: type[Record]) -> list[Record]:
    """The run's records of one kind from Redis, oldest first."""
    return [from_json(cls, raw) for raw in client.lrange(_list_key(cls, run), 0, -1)]


def count(client: Redis, run: str, cls: type) -> int:
    return int(client.llen(_list_key(cls, run)))


def read_files(run_dir: Path, cls: type[Record]) -> list[Record]:
    """The run's records of one kind from the storage root, oldest first (unreadable files skipped)."""
    found = (_load(cls, path) for path in _files(run_dir, cls, ".json"))
    return [record for record in found if record is not None]


def _files(run_dir: Path, cls: type[Record], ending: str) -> list[Path]:
    """The files of one kind of record whose names end in `ending`, oldest first (their names begin with the time)."""
    folder = evals_dir(run_dir)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [folder / n for n in sorted(names) if n.startswith(f"{cls.kind}-") and n.endswith(ending)]


def _load(cls: type[Record], path: Path) -> Record | None:
    try:
        return from_json(cls, path.read_bytes())
    except (OSError, ValueError, TypeError):
        return None  # a foreign or damaged file: the others still count


def rebuild(client: Redis, run: str, run_dir: Path) -> int:
    """Append to Redis the records on the storage root that it lacks; how many were added."""
    return _rebuild_kind(client, run, run_dir, MatchRecord) + _rebuild_kind(client, run, run_dir, AccuracyRecord)


def _rebuild_kind(client: Redis, run: str, run_dir: Path, cls: type[Record]) -> int:
    added = 0
    known = {r.id for r in read(client, run, cls)}
    for record in read_files(run_dir, cls):
        if record.id not in known:
            # Forced only where the set of ids outlived the list: a job recording it meanwhile wins.
            stale = bool(client.sismember(keys.evals_recorded(run), record.id))
            added += _append_once(client, run, record, force=stale)
            known.add(record.id)
    return added


def refit(client: Redis | None, run: str, run_dir: Path, matches: list[MatchRecord]) -> dict[str, ratings.Rating]:
    """Fit the ratings over `matches`; store them in Redis (when given) and in evals/ratings.json.

    Versions older than the newest `ratings.RATED_WINDOW` keep the rating ratings.json gave them, so a
    long run's refit costs the same as a short one's."""
    fitted = ratings.fit_versions((r.result() for r in matches), known=stored_ratings(run_dir))
    table = {player: rating.to_dict() for player, rating in fitted.items()}
    if client is not None:
        pipe = client.pipeline(transaction=True)
        pipe.delete(keys.ratings(run))
        if table:
            pipe.hset(keys.ratings(run), mapping={p: json.dumps(v) for p, v in table.items()})
        pipe.execute()
    text = json.dumps({"time": time.time(), "ratings": table}, indent=1)
    write_atomic(evals_dir(run_dir) / RATINGS_FILE, text.encode())
    return fitted


def stored_ratings(run_dir: Path) -> dict[str, ratings.Rating]:
    """The ratings of the last fit, from evals/ratings.json ({} without one, or a file that is not JSON)."""
    try:
        table = json.loads((evals_dir(run_dir) / RATINGS_FILE).read_text())["ratings"]
        return {p: ratings.Rating(float(v["elo"]), float(v["se"]), int(v["games"])) for p, v in table.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_ratings(client: Redis, run: str) -> dict[str, dict[str, float]]:
    """The stored ratings, best first."""
    raw = client.hgetall(keys.ratings(run))
    table = {as_text(k): json.loads(v) for k, v in raw.items()}
    return dict(sorted(table.items(), key=lambda item: -item[1]["elo"]))
