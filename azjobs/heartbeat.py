"""Liveness of every process of a run: a hash per process, refreshed every few seconds.

`azjobs status` shows a process whose heartbeat is older than `DEAD_AFTER_S` as dead.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping

import redis

from azjobs import __version__, keys

# What this process found when it joined the run (azjobs version, settings digest, storage marker
# verdict, CUDA): sent with every beat, so `azjobs doctor` can compare the machines.
FACTS: dict[str, str] = {}

INTERVAL_S = 2.0
DEAD_AFTER_S = 15.0
FORGET_AFTER_S = 24 * 3600  # a dead process's hash expires after a day


def process_id() -> str:
    """host-pid: unique among the live processes of a run."""
    return f"{socket.gethostname()}-{os.getpid()}"


def beat(client: redis.Redis, run: str, role: str, pid: str, fields: Mapping[str, Any] | None = None) -> None:
    """Record that `role:pid` is alive now, with its own figures."""
    key = keys.heartbeat(run, role, pid)
    values: dict[str, Any] = dict(FACTS)
    values.update({"time": time.time(), "role": role, "host": socket.gethostname()})
    values.update(fields or {})
    values["azjobs"] = __version__  # last: a role's own `version` field is its weights version
    pipe = client.pipeline(transaction=False)
    pipe.sadd(keys.processes(run), f"{role}:{pid}")
    pipe.hset(key, mapping={k: str(v) for k, v in values.items()})
    pipe.expire(key, FORGET_AFTER_S)
    pipe.execute()


def read_all(client: redis.Redis, run: str) -> list[dict[str, str]]:
    """Every known process of the run, with `alive` computed from its last beat."""
    now = time.time()
    out = []
    for member in sorted(m.decode() for m in client.smembers(keys.processes(run))):
        role, _, pid = member.partition(":")
        raw = client.hgetall(keys.heartbeat(run, role, pid))
        if not raw:
            client.srem(keys.processes(run), member)
            continue
        info = {k.decode(): v.decode() for k, v in raw.items()}
        info["id"] = pid
        info["alive"] = str(now - float(info.get("time", 0)) < DEAD_AFTER_S)
        out.append(info)
    return out
