"""`azjobs bench transport`: worker-to-server round trips through Redis with a null network.

A real inference server (its own process, the network replaced by `NullRunner`, which answers
zeros) and a client in this process with two requests in flight, built in place like a self-play
job's. The CPU time of each side, divided by the leaves carried, is what moving a leaf costs.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import redis

from azjobs import keys
from azjobs.bench import WINDOWS, emit, median, say
from azjobs.connection import connect
from azjobs.games import get_game
from azjobs.inference import server
from azjobs.inference.client import InferenceClient
from azjobs.inference.runner import NullRunner
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore

RUN = "bench-transport"
IN_FLIGHT = 2  # requests in flight, as a self-play job's two groups


def _serve_null(url: str, settings_json: str, run_dir: str, stop: Any) -> None:
    """The server process: gpu-serve's loop with a null network."""
    settings = Settings.from_json(settings_json)
    game = get_game(settings.game)
    client = connect(url)
    store = WeightStore(client, RUN, Path(run_dir))
    runner = NullRunner(game.planes_shape, game.num_actions, server.batch_capacity(settings))
    event = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), event.set()), daemon=True).start()
    server.serve(settings, client, RUN, store, runner, stop=event, log=lambda line: None, name="bench")


def run(settings: Settings, url: str, seconds: float, leaves: int) -> dict[str, Any]:
    game = get_game(settings.game)
    # One request is one batch: the server never waits for a second request that can only come later.
    settings = settings.replace(inference_batch_size=leaves, max_request_positions=max(leaves, 64))
    client = connect(url)
    client.delete(keys.requests(RUN))
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    with tempfile.TemporaryDirectory() as run_dir:
        process = context.Process(target=_serve_null, args=(url, settings.to_json(), run_dir, stop), daemon=True)
        process.start()
        try:
            say(f"bench transport: {game.name}, {leaves} leaves per request, {IN_FLIGHT} requests in flight, "
                f"{WINDOWS} windows of {seconds / WINDOWS:.1f} s")
            windows = _measure(client, game.planes_shape, process.pid, leaves, seconds)
        finally:
            stop.set()
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    for w in windows:
        say(f"  worker {w['worker_cpu_us_per_leaf']:.2f} us/leaf, server {w['server_cpu_us_per_leaf']:.2f} us/leaf, "
            f"redis {w['redis_cpu_us_per_leaf']:.2f} us/leaf, {w['round_trips_per_sec']:,.0f} round trips/s")
    figures = ("worker_cpu_us_per_leaf", "server_cpu_us_per_leaf", "redis_cpu_us_per_leaf", "round_trips_per_sec",
            "leaves_per_sec", "round_trip_us")
    return emit({"bench": "transport", "game": game.name, "leaves_per_request": leaves, "in_flight": IN_FLIGHT,
                 **{k: median([w[k] for w in windows], 3) for k in figures},
                 "windows": [round(w["worker_cpu_us_per_leaf"], 3) for w in windows]})


def _measure(client: redis.Redis, planes_shape: tuple[int, int, int], server_pid: int, leaves: int,
             seconds: float) -> list[dict[str, float]]:
    inference = InferenceClient(client, RUN, planes_shape=planes_shape, timeout_s=60)
    rng = np.random.default_rng(0)
    for slot in range(IN_FLIGHT):  # some game-like planes, written once (encoding is search's cost)
        inference.planes_buffer(slot, leaves)[:] = rng.integers(0, 2, size=(leaves, *planes_shape), dtype=np.uint8)
    server_process = psutil.Process(server_pid)
    tickets = [inference.submit_buffer(slot, leaves) for slot in range(IN_FLIGHT)]

    def round_trip(slot: int) -> None:
        inference.receive_reply(tickets[slot])
        tickets[slot] = inference.submit_buffer(slot, leaves)

    for _ in range(200):  # warm-up: connections, the server's first batches
        for slot in range(IN_FLIGHT):
            round_trip(slot)
    windows = []
    for _ in range(WINDOWS):
        trips, end = 0, time.monotonic() + seconds / WINDOWS
        cpu0, server0, redis0, wall0 = time.process_time(), _cpu(server_process), _redis_cpu(client), time.perf_counter()
        while time.monotonic() < end:
            for slot in range(IN_FLIGHT):
                round_trip(slot)
            trips += IN_FLIGHT
        wall = time.perf_counter() - wall0
        carried = trips * leaves
        windows.append({
            "worker_cpu_us_per_leaf": 1e6 * (time.process_time() - cpu0) / carried,
            "server_cpu_us_per_leaf": 1e6 * (_cpu(server_process) - server0) / carried,
            "redis_cpu_us_per_leaf": 1e6 * (_redis_cpu(client) - redis0) / carried,
            "round_trips_per_sec": trips / wall,
            "leaves_per_sec": carried / wall,
            "round_trip_us": 1e6 * wall / trips * IN_FLIGHT,  # each request shares the time with the other
        })
    for slot in range(IN_FLIGHT):
        inference.receive_reply(tickets[slot])
    inference.close()
    return windows


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
