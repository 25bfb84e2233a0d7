"""`azjobs bench soak`: a bounded load test of one inference server on loopback.

W client processes stand in for W self-play workers with G games each: every round a client sends
one request of G positions (the leaves of its G games, in the wire format workers use) and waits
for the reply, as a worker does at each search step. Each client checks every reply against what
the same weights give for that request's positions, so a lost, duplicated or misdelivered reply is
counted, not missed. Reports request latency percentiles and the resident memory of every process
(Redis, gpu-serve, each client) at the start and at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from azjobs import keys
from azjobs.bench import create_run
from azjobs.cluster import embedded
from azjobs.cluster.children import Child, exited, spawn, stop_in_order
from azjobs.cluster.connection import as_bytes, as_text, as_text_hash
from azjobs.games import Game, get_game
from azjobs.run import Run
from azjobs.settings import Settings

REPLY_TIMEOUT_S = 30.0  # a reply later than this counts as lost
POOL = 8  # distinct requests each client cycles through (their expected answers computed once)
READY_KEY = "bench:soak:ready"  # clients push their index here once they send (the bench's own Redis)
# CPU kernels may differ in the last bits with the batch a request lands in. A GPU server in fp32 keeps
# TF32 off (NetRunner; with TF32 cuDNN differs from the CPU by about 1e-3), so it is held to this too.
TOLERANCE = 1e-3


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def positions(game: Game, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` positions from random play, as planes `[count, C, H, W]`: what a worker's leaves look like."""
    states = np.repeat(game.initial_state()[None], count, axis=0)
    moves = rng.integers(0, 8, size=count)
    for ply in range(int(moves.max())):
        going = (ply < moves) & np.isnan(game.terminal_value(states))
        legal = game.legal_mask(states[going])
        if not going.any():
            break
        choice = np.array([rng.choice(np.flatnonzero(row)) for row in legal])
        states[going] = game.play(states[going], choice)
    return game.encode(states)


@dataclass
class ClientResult:
    sent: int
    answered: int
    lost: int
    wrong: int
    duplicates: int
    loop_s: float  # how long it sent requests
    latencies_ms: list[float]

    @classmethod
    def from_json(cls, line: str) -> ClientResult:
        return cls(**json.loads(line))


def client_main(run: Run, index: int, games: int, seconds: float) -> ClientResult:
    """One stand-in worker: requests of `games` positions, one in flight, for `seconds`."""
    from azjobs.inference.local import LocalEvaluator
    from azjobs.storage.weights import WeightStore
    from azjobs.wire import WireError, decode_reply, encode_request

    client, settings = run.redis, run.settings()
    assert settings is not None and run.folder is not None, f"no run {run.name!r} in the bench's Redis"
    game = get_game(settings.game)
    _, data = WeightStore(client, run.name, run.folder).latest() or (None, b"")
    local = LocalEvaluator.from_bytes(game, data)
    rng = np.random.default_rng(index)
    pool = [positions(game, games, rng) for _ in range(POOL)]
    expected = [local.evaluate(planes) for planes in pool]
    client_id = f"soak-{index}-{os.getpid()}"
    reply_key, requests_key = keys.reply(run.name, client_id), keys.requests(run.name)
    result = ClientResult(0, 0, 0, 0, 0, 0.0, [])
    client.rpush(READY_KEY, index)
    began = time.monotonic()
    end = began + seconds
    request_id = 0
    while time.monotonic() < end:
        request_id += 1
        which = request_id % POOL
        started = time.perf_counter()
        client.rpush(requests_key, encode_request(request_id, client_id, pool[which]))
        result.sent += 1
        while True:  # until this request's reply, or the timeout
            popped = client.blpop([reply_key], timeout=REPLY_TIMEOUT_S)
            if popped is None:
                result.lost += 1
                break
            try:
                reply = decode_reply(as_bytes(popped[1]))
            except WireError:
                result.wrong += 1
                continue
            if reply.request_id != request_id:  # an answer to something already answered
                result.duplicates += 1
                continue
            result.latencies_ms.append(round(1000 * (time.perf_counter() - started), 3))
            result.answered += 1
            logits, values = expected[which]
            if not (
                np.allclose(reply.values, values, atol=TOLERANCE) and np.allclose(reply.logits, logits, atol=TOLERANCE)
            ):
                result.wrong += 1
            break
    result.loop_s = round(time.monotonic() - began, 3)
    # A straggler reply after the last request would be a duplicate: look once more, briefly.
    late = client.blpop([reply_key], timeout=1)
    if late is not None:
        result.duplicates += 1
    return result


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    values = np.asarray(latencies)
    found = {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99, 99.9)}
    found["max"] = float(values.max())
    found["mean"] = float(values.mean())
    return {k: round(v, 2) for k, v in found.items()}


def run(
    settings: Settings,
    *,
    seconds: float,
    workers: int,
    games: int,
    progress: Callable[[float, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The soak: one gpu-serve process, `workers` client processes, `seconds` long; the report."""
    server_redis = embedded.start(unix_socket=False)  # TCP on 127.0.0.1: loopback, as between machines
    folder = Path(tempfile.mkdtemp(prefix="azjobs-soak-"))
    run_dir = folder / "soak"
    children: list[Child] = []
    try:
        client = redis.Redis.from_url(server_redis.url)
        create_run(Run.at(run_dir, client), settings)
        logs = folder / "logs"
        logs.mkdir()
        _start(children, server_redis.url, run_dir, logs, workers, games, seconds)
        _wait_ready(client, children, workers, logs)
        started = time.monotonic()
        pids = {c.role: c.process.pid for c in children} | {"redis": server_redis.process.pid}
        time.sleep(min(2.0, seconds / 4))  # past the first requests: imports and buffers settled
        rss_start = {name: rss_mb(pid) for name, pid in pids.items()}
        log(f"soak: {workers} clients x {games} games against one gpu-serve for {seconds:g} s (logs in {logs})")
        end = started + seconds
        rss_end: dict[str, float | None] = {}
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            if end - time.monotonic() < 1.5 and not rss_end:
                rss_end = {name: rss_mb(pid) for name, pid in pids.items()}
            if progress is not None:
                progress(time.monotonic() - started, int(_server_beat(client).get("requests", 0) or 0))
        rss_end = rss_end or {name: rss_mb(pid) for name, pid in pids.items()}
        results = []
        for child in children[1:]:
            out, _ = child.process.communicate(timeout=REPLY_TIMEOUT_S + 120)
            results.append(ClientResult.from_json(out.decode().strip().splitlines()[-1]))
        beat = _server_beat(client)
        shutil.rmtree(folder, ignore_errors=True)  # kept, with its logs, only when something went wrong
    finally:
        stop_in_order(children, order=("client", "gpu-serve"), grace_s=30)
        server_redis.stop()
    return {
        "bench": "soak",
        "game": settings.game,
        "network": f"{settings.net_blocks}x{settings.net_channels}",
        "inference_batch_size": settings.inference_batch_size,
        "workers": workers,
        "games_per_worker": games,
        "seconds": seconds,
        **_delivery(results, games),
        "server_dropped": int(beat.get("dropped", 0) or 0),
        "latency_ms": _percentiles([ms for r in results for ms in r.latencies_ms]),
        "rss_mb": {name: {"start": rss_start.get(name), "end": rss_end.get(name)} for name in pids},
        "rss_growth_mb": round(max((rss_end[n] or 0) - (rss_start[n] or 0) for n in pids), 1),
    }


def _start(
    children: list[Child], url: str, run_dir: Path, logs: Path, workers: int, games: int, seconds: float
) -> None:
    """Start gpu-serve and the `workers` clients, each appended to `children` once started (the caller stops them)."""
    # fp32, as the clients' reference (LocalEvaluator on CPU): bf16 differs from it by about
    # 1e-3, beyond what the check allows, and the soak is about delivery, not precision
    children.append(spawn("gpu-serve", ["gpu-serve", "--precision", "fp32"], url, run_dir, logs, 1, own_env=True))
    for i in range(workers):
        args = ["bench", "soak-client", "--index", str(i), "--games", str(games), "--seconds", str(seconds)]
        children.append(spawn(f"client-{i + 1}", args, url, run_dir, logs, 1, own_env=True, capture_stdout=True))


def _wait_ready(client: redis.Redis, children: list[Child], workers: int, logs: Path) -> None:
    """Until every client sends (within two minutes, none of the processes exiting meanwhile)."""
    ready_by = time.monotonic() + 120
    while client.llen(READY_KEY) < workers:
        if time.monotonic() > ready_by or exited(children):
            raise RuntimeError(f"the soak's processes did not start; see {logs}")
        time.sleep(0.1)


def _delivery(results: list[ClientResult], games: int) -> dict[str, Any]:
    """The requests sent, answered, lost, wrong and duplicated over all clients, and their rates."""
    per_second = sum(r.answered / max(r.loop_s, 1e-9) for r in results)  # each over its own sending time
    return {
        "requests": sum(r.sent for r in results),
        "answered": sum(r.answered for r in results),
        "lost": sum(r.lost for r in results),
        "wrong": sum(r.wrong for r in results),
        "duplicates": sum(r.duplicates for r in results),
        "requests_per_s": round(per_second, 1),
        "evals_per_s": round(per_second * games, 1),
    }


def _server_beat(client: redis.Redis) -> dict[str, str]:
    for member in client.smembers(keys.processes("soak")):
        role, _, pid = as_text(member).partition(":")
        if role == "gpu-serve":
            return as_text_hash(client.hgetall(keys.heartbeat("soak", role, pid)))
    return {}
