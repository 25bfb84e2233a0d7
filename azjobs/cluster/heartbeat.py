"""Liveness of every process of a run: a hash per process, refreshed every few seconds.

Each beat also sets the process's `alive` key with an expiry of `DEAD_AFTER_S`: a process is alive
while that key exists. Redis' clock alone decides, so hosts whose clocks differ (by 15 s, or 30) never
make each other look dead; the hash's `time` (the writer's clock) is for display only.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any, Callable, Mapping

import psutil
import redis

from azjobs import __version__, keys
from azjobs.cluster.connection import as_text, as_text_hash

# What this process found when it joined the run (azjobs version, settings digest, storage marker
# verdict, CUDA): sent with every beat, so `azjobs doctor` can compare the machines.
FACTS: dict[str, str] = {}

INTERVAL_S = 2.0
DEAD_AFTER_S = 15.0
FORGET_AFTER_S = 24 * 3600  # a dead process's hash expires after a day


_PROCESS: psutil.Process | None = None  # this process, kept so cpu_percent measures since the last beat


def resources(device: str | None = None) -> dict[str, Any]:
    """This process's CPU share since the last beat (100 = one core), its resident memory, and the CUDA
    memory torch holds on `device` (`cuda:N`; else its current one) where this process uses CUDA (torch
    imported and initialized)."""
    global _PROCESS
    if _PROCESS is None or _PROCESS.pid != os.getpid():  # a forked child measures itself
        _PROCESS = psutil.Process()
    out: dict[str, Any] = {}
    try:
        with _PROCESS.oneshot():
            out["cpu_percent"] = round(_PROCESS.cpu_percent(), 1)
            out["rss_mb"] = round(_PROCESS.memory_info().rss / 2**20, 1)
    except psutil.Error:
        pass
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        try:  # the role's own device (a beat may come from a thread whose current device is another)
            index = int(device.split(":")[1]) if device and device.startswith("cuda:") else cuda.current_device()
            out["gpu_memory_mb"] = round(cuda.memory_reserved(index) / 2**20, 1)
            out["gpu_memory_total_mb"] = round(cuda.get_device_properties(index).total_memory / 2**20)
        except (RuntimeError, ValueError, AssertionError):
            pass
    return out


def process_id() -> str:
    """host-pid: unique among the live processes of a run."""
    return f"{socket.gethostname()}-{os.getpid()}"


def beat(
    client: redis.Redis,
    run: str,
    role: str,
    pid: str,
    fields: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Record that `role:pid` is alive now, with its own figures (`clock`: this host's wall clock)."""
    key = keys.heartbeat(run, role, pid)
    values: dict[str, Any] = dict(FACTS)
    values.update(resources(str((fields or {}).get("device", "")) or None))
    values.update({"time": clock(), "role": role, "host": socket.gethostname()})
    values.update(fields or {})
    values["azjobs"] = __version__  # last: a role's own `version` field is its weights version
    pipe = client.pipeline(transaction=False)
    pipe.sadd(keys.processes(run), f"{role}:{pid}")
    pipe.hset(key, mapping={k: str(v) for k, v in values.items()})
    pipe.expire(key, FORGET_AFTER_S)
    pipe.set(keys.alive(run, role, pid), 1, px=int(DEAD_AFTER_S * 1000))
    pipe.execute()


def is_alive(client: redis.Redis, run: str, role: str, pid: str) -> bool:
    """Whether `role:pid` beat within the last DEAD_AFTER_S, by Redis' clock."""
    return bool(client.exists(keys.alive(run, role, pid)))


def read_all(client: redis.Redis, run: str) -> list[dict[str, str]]:
    """Every known process of the run, with `alive` from its alive key."""
    out = []
    for member in sorted(as_text(m) for m in client.smembers(keys.processes(run))):
        role, _, pid = member.partition(":")
        raw = client.hgetall(keys.heartbeat(run, role, pid))
        if not raw:
            client.srem(keys.processes(run), member)
            continue
        info = as_text_hash(raw)
        info["id"] = pid
        info["alive"] = str(is_alive(client, run, role, pid))
        out.append(info)
    return out
