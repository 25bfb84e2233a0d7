"""`azjobs bench selfplay`: the real pipeline as separate processes for a fixed time.

An embedded Redis, one `azjobs gpu-serve` and `--workers` `azjobs worker` processes play self-play
jobs of a new run (random weights; no trainer). Figures come from the processes' heartbeats and CPU
times, taken when the server beats: leaf evaluations and moves per second, the mean batch fill, the
share of all CPU time of all those processes spent in the network's forward pass, and the CPU time
of everything else per leaf evaluation (search, encoding, transport, Redis, the server's own loop).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.bench import WINDOWS, create_run, emit, median, say
from azjobs.cluster import embedded, heartbeat
from azjobs.cluster.children import Child, exited, spawn, stop_in_order
from azjobs.cluster.connection import connect
from azjobs.games import get_game
from azjobs.run import Run
from azjobs.settings import Settings

SELFPLAY = "azjobs.jobs.selfplay.selfplay"
STARTUP_TIMEOUT_S = 300.0  # first batches: imports, numba's first compile, the runner's timing


@dataclass(frozen=True)
class Sample:
    """Cumulative figures of every process at one moment (one server heartbeat)."""

    time: float  # the server's beat time
    leaf_evals: int
    batches: int
    forward_cpu_s: float
    server_cpu_s: float
    workers_cpu_s: float
    redis_cpu_s: float
    worker_positions: dict[str, tuple[float, int]]  # worker -> (its beat time, positions)


def run(
    settings: Settings, seconds: float, warmup_s: float, workers: int, server_threads: int, serve_flags: list[str]
) -> dict[str, Any]:
    game = get_game(settings.game)
    with tempfile.TemporaryDirectory(prefix="azjobs-bench-") as tmp:
        run_dir = Path(tmp) / "bench-selfplay"
        log_dir = Path(tmp) / "logs"
        log_dir.mkdir()
        redis_server = embedded.start()
        children: list[Child] = []
        try:
            client = connect(redis_server.url)
            run = run_dir.name
            create_run(Run(run, run_dir, client), settings)
            queue = Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)
            _top_up(queue, run, workers)
            say(
                f"bench selfplay: {game.name} {settings.net_blocks}x{settings.net_channels}, {workers} worker(s), "
                f"gpu-serve with {server_threads} thread(s), batch {settings.inference_batch_size}, "
                f"{settings.games_in_flight} games in flight per job; logs in {log_dir}"
            )
            _start(children, redis_server.url, run_dir, log_dir, workers, server_threads, serve_flags)
            _warm_up(client, run, queue, workers, children, warmup_s, log_dir)
            samples = [_sample(client, run, children, redis_server.process.pid)]
            for _ in range(WINDOWS):
                deadline = time.monotonic() + seconds / WINDOWS
                while time.monotonic() < deadline:
                    _top_up(queue, run, workers)
                    _check_alive(children, log_dir)
                    time.sleep(0.5)
                samples.append(_sample(client, run, children, redis_server.process.pid))
        finally:
            stop_in_order(children)  # workers first (a second SIGTERM stops a job now), then the server
            redis_server.stop()
    windows = [_figures(a, b, settings.inference_batch_size) for a, b in zip(samples, samples[1:])]
    for w in windows:
        say(
            f"  {w['positions_per_sec']:,.0f} moves/s, {w['leaf_evals_per_sec']:,.0f} leaves/s, "
            f"fill {w['mean_batch_fill']:.3f}, forward {100 * w['forward_cpu_share']:.1f}% of CPU, "
            f"{w['non_nn_cpu_us_per_leaf']:.2f} us/leaf besides it (worker {w['worker_cpu_us_per_leaf']:.2f}, "
            f"server {w['server_non_nn_cpu_us_per_leaf']:.2f}, redis {w['redis_cpu_us_per_leaf']:.2f})"
        )
    keys_ = list(windows[0])
    return emit(
        {
            "bench": "selfplay",
            "game": game.name,
            "network": f"{settings.net_blocks}x{settings.net_channels}",
            "workers": workers,
            "server_threads": server_threads,
            "inference_batch_size": settings.inference_batch_size,
            "games_in_flight": settings.games_in_flight,
            "games_per_job": settings.games_per_job,
            "num_simulations": settings.num_simulations,
            **{k: median([w[k] for w in windows], 4) for k in keys_},
            "windows": [round(w["leaf_evals_per_sec"]) for w in windows],
        }
    )


def _start(
    children: list[Child],
    url: str,
    run_dir: Path,
    log_dir: Path,
    workers: int,
    server_threads: int,
    serve_flags: list[str],
) -> None:
    """Start gpu-serve, then the workers, each appended to `children` once started (the caller stops them)."""
    children.append(spawn("gpu-serve", ["gpu-serve", *serve_flags], url, run_dir, log_dir, server_threads))
    for i in range(workers):
        children.append(spawn(f"worker-{i + 1}", ["worker"], url, run_dir, log_dir, 1))


def _top_up(queue: Queue, run: str, workers: int) -> None:
    """Keep a job waiting for every worker, so none is ever idle between jobs."""
    for _ in range(max(0, 2 * workers - queue.count)):
        queue.enqueue(SELFPLAY, run, int(time.time_ns() % 2**31), job_timeout=-1)


def _check_alive(children: list[Child], log_dir: Path) -> None:
    for child in exited(children):
        raise RuntimeError(f"{child.role} exited early; see its log in {log_dir}")


def _warm_up(
    client: redis.Redis,
    run: str,
    queue: Queue,
    workers: int,
    children: list[Child],
    warmup_s: float,
    log_dir: Path,
) -> None:
    """Until every worker has played and the server has run `warmup_s` seconds since its first batch."""
    started, first_batch = time.monotonic(), None
    while True:
        _top_up(queue, run, workers)
        _check_alive(children, log_dir)
        beats = heartbeat.read_all(client, run)
        served = sum(int(b.get("positions", 0)) for b in beats if b["role"] == "gpu-serve")
        playing = [b for b in beats if b["role"] == "worker" and int(b.get("positions", 0)) > 0]
        if served and first_batch is None:
            first_batch = time.monotonic()
            say(f"  first batches after {first_batch - started:.0f} s; warming up {warmup_s:.0f} s")
        if first_batch is not None and len(playing) >= workers and time.monotonic() - first_batch >= warmup_s:
            return
        if time.monotonic() - started > STARTUP_TIMEOUT_S:
            raise RuntimeError(
                f"the pipeline did not start within {STARTUP_TIMEOUT_S:.0f} s; see the logs in {log_dir}"
            )
        time.sleep(0.5)


def _sample(client: redis.Redis, run: str, children: list[Child], redis_pid: int) -> Sample:
    """Wait for the server's next heartbeat, then read every process's CPU time at once."""
    server_beat = _server_beat(client, run)
    while (fresh := _server_beat(client, run))["time"] == server_beat["time"]:
        time.sleep(0.002)
    workers_cpu = sum(
        _cpu(child.process.pid) for child in children[1:]
    )  # children[0] is the server: its beat has its CPU
    redis_cpu = _cpu(redis_pid)
    beats = heartbeat.read_all(client, run)
    return Sample(
        time=float(fresh["time"]),
        leaf_evals=int(fresh["positions"]),
        batches=int(fresh["batches"]),
        forward_cpu_s=float(fresh["forward_cpu_s"]),
        server_cpu_s=float(fresh["cpu_s"]),
        workers_cpu_s=workers_cpu,
        redis_cpu_s=redis_cpu,
        worker_positions={
            b["id"]: (float(b["time"]), int(b.get("positions", 0))) for b in beats if b["role"] == "worker"
        },
    )


def _server_beat(client: redis.Redis, run: str) -> dict[str, str]:
    return next(b for b in heartbeat.read_all(client, run) if b["role"] == "gpu-serve" and "cpu_s" in b)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _figures(a: Sample, b: Sample, batch_size: int) -> dict[str, float]:
    dt = b.time - a.time
    leaves = max(b.leaf_evals - a.leaf_evals, 1)
    forward = b.forward_cpu_s - a.forward_cpu_s
    server = b.server_cpu_s - a.server_cpu_s
    workers = b.workers_cpu_s - a.workers_cpu_s
    redis_cpu = b.redis_cpu_s - a.redis_cpu_s
    total = server + workers + redis_cpu
    moves_per_s = 0.0
    for worker, (t1, p1) in b.worker_positions.items():
        t0, p0 = a.worker_positions.get(worker, (t1, p1))
        moves_per_s += (p1 - p0) / (t1 - t0) if t1 > t0 else 0.0
    return {
        "positions_per_sec": moves_per_s,
        "leaf_evals_per_sec": leaves / dt,
        "mean_batch_fill": leaves / max(b.batches - a.batches, 1) / batch_size,
        "forward_cpu_share": forward / total,
        "non_nn_cpu_us_per_leaf": 1e6 * (total - forward) / leaves,
        "worker_cpu_us_per_leaf": 1e6 * workers / leaves,
        "server_non_nn_cpu_us_per_leaf": 1e6 * (server - forward) / leaves,
        "redis_cpu_us_per_leaf": 1e6 * redis_cpu / leaves,
        "forward_us_per_leaf": 1e6 * forward / leaves,
        "cpu_cores_busy": total / dt,
    }
