"""`azjobs bench transport`: worker-to-server round trips through Redis with a null network.

Per shard, one Redis and one real inference server (its own process, the network replaced by `NullRunner`,
which answers zeros, optionally after sleeping a fixed time per batch as a GPU's forward would); clients in
processes of their own, each with two requests in flight built in place like a self-play job's, split over
the shards. The CPU time of each side divided by the positions carried is what moving a position costs; with a
fixed forward time, the server's wall time per batch over that time shows how much of its CPU work overlaps it.
Where that CPU goes: the servers' split between the forward thread and the others (the collector's), their
sleeps per batch (each wait for Redis or for the other thread, which on a busy machine costs more than the
Python around it), and Redis' commands per request.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.sharedctypes
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import redis

from azjobs import keys
from azjobs.bench import WINDOWS, emit, median, say
from azjobs.cluster.connection import connect
from azjobs.games import get_game
from azjobs.settings import Settings

RUN = "bench-transport"
IN_FLIGHT = 2  # requests in flight per client, as a self-play job's two groups
WARMUP_TRIPS = 100  # round trips each client makes before the windows start
START_TIMEOUT_S = 120.0  # longest wait for the processes to start and warm up (a loaded machine is slow)


@dataclass(frozen=True)
class Shape:
    """What one run of the benchmark carries."""

    leaves: int  # positions per request
    clients: int  # client processes, split over the shards
    batch_size: int  # the servers' inference_batch_size
    forward_ms: float  # the stand-in network's time per batch (0: none)


def _serve_null(url: str, settings_json: str, run_dir: str, forward_ms: float, counts: Any, stop: Any) -> None:
    """A server process: gpu-serve's loop with a null network; counts[0], counts[1]: batches, positions run;
    counts[2]: the forward thread's native id."""
    from azjobs.inference import server
    from azjobs.inference.runner import NullRunner
    from azjobs.storage.weights import WeightStore

    class CountingRunner(NullRunner):
        def outputs(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:  # every pass ends here
            outputs = super().outputs(n, slot)
            counts[0] += 1
            counts[1] += n
            counts[2] = threading.get_native_id()
            return outputs

    settings = Settings.from_json(settings_json)
    game = get_game(settings.game)
    client = connect(url)
    runner = CountingRunner(
        game.planes_shape,
        game.num_actions,
        server.batch_capacity(settings),
        slots=server.SLOTS,
        forward_s=forward_ms / 1000.0,
    )
    event = threading.Event()

    def relay() -> None:  # the process-wide stop becomes the serving loop's threading.Event
        stop.wait()
        event.set()

    threading.Thread(target=relay, daemon=True).start()
    server.serve(
        settings,
        client,
        RUN,
        WeightStore(client, RUN, Path(run_dir)),
        runner,
        stop=event,
        log=lambda line: None,
        name="bench",
    )


def _client(url: str, planes_shape: tuple[int, int, int], leaves: int, seed: int, trips: Any, stop: Any) -> None:
    """A client process: IN_FLIGHT requests always in flight until stopped; trips.value counts round trips."""
    from azjobs.inference.client import InferenceClient

    inference = InferenceClient(connect(url), RUN, planes_shape=planes_shape, timeout_s=60)
    rng = np.random.default_rng(seed)
    for slot in range(IN_FLIGHT):  # some game-like planes, written once (encoding is search's cost)
        inference.planes_buffer(slot, leaves)[:] = rng.integers(0, 2, size=(leaves, *planes_shape), dtype=np.uint8)
    tickets = [inference.submit_buffer(slot, leaves) for slot in range(IN_FLIGHT)]
    while not stop.is_set():
        for slot in range(IN_FLIGHT):
            inference.receive_reply(tickets[slot])
            tickets[slot] = inference.submit_buffer(slot, leaves)
        trips.value += IN_FLIGHT
    for slot in range(IN_FLIGHT):
        inference.receive_reply(tickets[slot])
    inference.close()


def run(settings: Settings, urls: list[str], seconds: float, shape: Shape) -> dict[str, Any]:
    """Measure over `urls` (one shard each) and emit the figures as one JSON line."""
    game = get_game(settings.game)
    settings = settings.replace(inference_batch_size=shape.batch_size, max_request_positions=max(shape.leaves, 64))
    context = multiprocessing.get_context("spawn")
    stop_clients, stop_servers = context.Event(), context.Event()  # clients first: their last replies come
    redises = [connect(url) for url in urls]
    for client in redises:
        client.delete(keys.requests(RUN))
    counts = [context.RawArray("d", 3) for _ in urls]
    trips = [context.RawValue("q", 0) for _ in range(shape.clients)]
    with tempfile.TemporaryDirectory() as run_dir:
        servers = [
            context.Process(
                target=_serve_null,
                args=(url, settings.to_json(), run_dir, shape.forward_ms, counts[i], stop_servers),
                daemon=True,
            )
            for i, url in enumerate(urls)
        ]
        clients = [
            context.Process(
                target=_client,
                args=(urls[i % len(urls)], game.planes_shape, shape.leaves, i, trips[i], stop_clients),
                daemon=True,
            )
            for i in range(shape.clients)
        ]
        for process in servers + clients:
            process.start()
        try:
            say(
                f"bench transport: {game.name}, {shape.leaves} leaves per request, {shape.clients} clients with "
                f"{IN_FLIGHT} requests in flight each, batches of {shape.batch_size}"
                + (f", {shape.forward_ms:g} ms per forward" if shape.forward_ms else "")
                + f", {len(urls)} shard{'s' if len(urls) > 1 else ''}, {WINDOWS} windows of {seconds / WINDOWS:.1f} s"
            )
            _wait_warm(trips, clients + servers)
            windows = [
                _window(redises, servers, clients, counts, trips, shape, seconds / WINDOWS) for _ in range(WINDOWS)
            ]
        finally:
            for stop, processes in ((stop_clients, clients), (stop_servers, servers)):
                stop.set()
                for process in processes:
                    process.join(timeout=20)
                    if process.is_alive():
                        process.terminate()
    return _report(game.name, shape, len(urls), windows)


def _wait_warm(trips: list[Any], processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """Until every client made its warm-up round trips (connections made, the servers' first batches run)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while min(t.value for t in trips) < WARMUP_TRIPS:
        dead = [p for p in processes if not p.is_alive()]
        if dead:
            raise RuntimeError(f"a benchmark process exited with code {dead[0].exitcode} before the measurement")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the clients did not warm up within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def _window(
    redises: list[redis.Redis],
    servers: Sequence[multiprocessing.process.BaseProcess],
    clients: Sequence[multiprocessing.process.BaseProcess],
    counts: list[Any],
    trips: list[Any],
    shape: Shape,
    seconds: float,
) -> dict[str, float]:
    """One measurement window's figures, per position carried (and per batch run)."""

    def sample() -> dict[str, Any]:
        return {
            "wall": time.perf_counter(),
            "trips": sum(t.value for t in trips),
            "client_cpu": sum(_cpu(p.pid) for p in clients),
            "server_cpu": [_cpu(p.pid) for p in servers],
            "forward_cpu": sum(_thread_cpu(p.pid, int(c[2])) for p, c in zip(servers, counts)),
            "server_sleeps": sum(_sleeps(p.pid) for p in servers),
            "redis_cpu": [_redis_cpu(r) for r in redises],
            "redis_commands": sum(_redis_commands(r) for r in redises),
            "batches": sum(c[0] for c in counts),
            "positions": [c[1] for c in counts],
        }

    before = sample()
    time.sleep(seconds)
    after = sample()
    wall = after["wall"] - before["wall"]
    carried = max(1, (after["trips"] - before["trips"]) * shape.leaves)
    batches = max(1.0, after["batches"] - before["batches"])
    shard_positions = [b - a for a, b in zip(before["positions"], after["positions"])]
    redis_cpu = [b - a for a, b in zip(before["redis_cpu"], after["redis_cpu"])]
    server_cpu = sum(after["server_cpu"]) - sum(before["server_cpu"])
    forward_cpu = after["forward_cpu"] - before["forward_cpu"]
    requests = max(1, after["trips"] - before["trips"])
    figures = {
        "worker_cpu_us_per_leaf": 1e6 * (after["client_cpu"] - before["client_cpu"]) / carried,
        "server_cpu_us_per_leaf": 1e6 * server_cpu / carried,
        "forward_thread_us_per_batch": 1e6 * forward_cpu / batches,  # the rest of the server's CPU: the collector's
        "other_threads_us_per_batch": 1e6 * (server_cpu - forward_cpu) / batches,
        "server_sleeps_per_batch": (after["server_sleeps"] - before["server_sleeps"]) / batches,
        "redis_cpu_us_per_leaf": 1e6 * sum(redis_cpu) / carried,
        "redis_commands_per_request": (after["redis_commands"] - before["redis_commands"]) / requests,
        "round_trips_per_sec": (after["trips"] - before["trips"]) / wall,
        "leaves_per_sec": carried / wall,
        "round_trip_us": 1e6 * wall * shape.clients * IN_FLIGHT / max(1, after["trips"] - before["trips"]),
        "batch_fill": sum(shard_positions) / batches / shape.batch_size,
        "ms_per_batch": 1000 * wall * len(servers) / batches,  # each server's wall time per batch
        "redis_core_leaves_per_sec": sum(shard_positions) / max(sum(redis_cpu), 1e-9),
    }
    for i, positions in enumerate(shard_positions):
        figures[f"shard{i}_leaves_per_sec"] = positions / wall
    if shape.forward_ms:
        figures["batch_wall_over_forward"] = figures["ms_per_batch"] / shape.forward_ms
    return figures


def _report(game: str, shape: Shape, shards: int, windows: list[dict[str, float]]) -> dict[str, Any]:
    for w in windows:
        say(
            f"  worker {w['worker_cpu_us_per_leaf']:.2f} us/leaf, server {w['server_cpu_us_per_leaf']:.3f} us/leaf, "
            f"redis {w['redis_cpu_us_per_leaf']:.3f} us/leaf, {w['leaves_per_sec']:,.0f} leaves/s, "
            f"{w['ms_per_batch']:.2f} ms per batch, fill {w['batch_fill']:.2f}; server threads per batch: forward "
            f"{w['forward_thread_us_per_batch']:.0f} us, others {w['other_threads_us_per_batch']:.0f} us, "
            f"{w['server_sleeps_per_batch']:.1f} sleeps, Redis {w['redis_commands_per_request']:.2f} commands a request"
        )
    result: dict[str, Any] = {
        "bench": "transport",
        "game": game,
        "leaves_per_request": shape.leaves,
        "clients": shape.clients,
        "in_flight": IN_FLIGHT,
        "batch_size": shape.batch_size,
        "forward_ms": shape.forward_ms,
        "shards": shards,
    }
    result.update({key: median([w[key] for w in windows], 3) for key in windows[0]})
    result["redis_core_requests_per_sec"] = round(result["redis_core_leaves_per_sec"] / shape.leaves, 1)
    result["windows"] = {
        key: [round(w[key], 3) for w in windows]
        for key in ("server_cpu_us_per_leaf", "redis_cpu_us_per_leaf", "ms_per_batch")
    }
    return emit(result)


def _cpu(pid: int | None) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:  # it finished; its time is no longer counted
        return 0.0
    return times.user + times.system


def _thread_cpu(pid: int | None, thread_id: int) -> float:
    """CPU seconds of one thread of a process (0 before it is known or once the process is gone)."""
    try:
        threads = psutil.Process(pid).threads()
    except psutil.NoSuchProcess:
        return 0.0
    return next((t.user_time + t.system_time for t in threads if t.id == thread_id), 0.0)


def _sleeps(pid: int | None) -> int:
    """Voluntary context switches of a process's threads: each time one slept (waited for Redis, a queue, a lock
    or the GIL). Linux's per-thread counts; 0 elsewhere or once the process is gone."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError):
            total += sum(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("vol"))
    return total


def _redis_commands(client: redis.Redis) -> int:
    """Commands Redis ran so far (the benchmark's own INFO calls are a few per window)."""
    return sum(int(stats["calls"]) for stats in client.info("commandstats").values())


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
