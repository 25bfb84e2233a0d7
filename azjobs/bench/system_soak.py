"""`azjobs bench soak --system`: the whole system on loopback for a set time, with faults on a schedule.

A real trainer, gpu-serve and several workers run against a Redis of their own that keeps an
append-only file (so a restart loses nothing), in a temporary run folder. Every `fault_every` seconds
one fault is injected, in turn: a worker killed (SIGKILL) and started again, gpu-serve killed and
started again a few seconds later, Redis restarted, garbage pushed onto the request list. Every second
the bench samples `weights:latest`, every two seconds the resident memory of every process. At the end
it stops the roles in order and checks: every finished job's games counted once, no shard both listed
and missing, every job's games in one shard, the counters equal to the sums over the files on disk,
weights versions only rising, no process dying unbidden, and resident memory flat.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.bench.soak import rss_mb
from azjobs.cluster import children, embedded
from azjobs.cluster.connection import as_text_hash
from azjobs.run import Run
from azjobs.settings import Settings
from azjobs.storage.replay import list_shards, replay_dir, shard_names

RUN = "soak"
FAULTS = ("kill-worker", "kill-gpu-serve", "restart-redis", "garbage-requests")
# The default run: tic-tac-toe with a tiny network and few simulations, so it trains on a laptop's CPU.
TINY = {
    "game": "tictactoe",
    "net_blocks": 1,
    "net_channels": 8,
    "num_simulations": 4,
    "games_per_job": 8,
    "temperature_moves": 2,
    "min_replay_positions": 100,
    "replay_buffer_size": 5000,
    "batch_size": 32,
    "publish_every_steps": 5,
    "max_train_per_position": 8,
    "selfplay_queue_depth": 3,
}
SERVER_DOWN_S = 3.0  # gpu-serve stays away this long after it is killed: the workers wait for it
GARBAGE = (b"", b"\x00" * 7, b"not a request", os.urandom(64), b"AZR\x01" + os.urandom(40))
RSS_EVERY_S = 2.0
RSS_WARMUP_S = 20.0  # a process's first seconds (imports, compiling, first batches) are not its steady state
RSS_MIN_SAMPLES = 9  # a process sampled fewer times than this is too short-lived to judge
RSS_SLACK_MB = 16.0  # memory is flat when the last third's mean exceeds the first third's by at most
RSS_SLACK_FRACTION = 0.05  # this much plus this fraction of the first third's mean
STOP_GRACE_S = 30.0


def tiny_defaults(flags: dict[str, Any]) -> dict[str, Any]:
    """The settings flags given, over the soak's tiny run (a flag given wins; with --game, only its own)."""
    given = {k: v for k, v in flags.items() if v is not None}
    return given if "game" in given else {**TINY, **given}


@dataclass
class Proc(children.Child):
    """One run of one role's process (role "trainer", "gpu-serve", "worker-2" or "redis"); `incarnation`
    counts its starts (a restart is a new Proc)."""

    _: KW_ONLY
    incarnation: int
    started: float  # monotonic
    killed: bool = False  # by the soak, on purpose
    rss: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, MiB)

    @property
    def key(self) -> str:
        return f"{self.role}#{self.incarnation}"


class AofRedis:
    """A redis-server on a fixed loopback port that keeps an append-only file, so it can be restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = embedded.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.procs: list[Proc] = []  # one per start

    def start(self, timeout_s: float = 30.0) -> None:
        args = [
            embedded.redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]
        log = open(self.folder / "redis.log", "ab")
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.procs.append(Proc("redis", process, incarnation=len(self.procs) + 1, started=time.monotonic()))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                # Loading the append-only file answers LOADING (a ResponseError) until it is done.
                if redis.Redis.from_url(self.url, socket_timeout=2).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}") from None
                time.sleep(0.05)

    def live(self) -> list[Proc]:
        return [p for p in self.procs if p.process.poll() is None]

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        for proc in self.live():
            proc.killed = True
        children.stop_in_order(self.live(), grace_s=STOP_GRACE_S)

    def restart(self) -> None:
        self.stop()
        self.start()


class Fleet:
    """The roles as child processes (`python -m azjobs ROLE --run-dir ...`), their logs in `logs`."""

    def __init__(self, url: str, run_dir: Path, logs: Path) -> None:
        self.url, self.run_dir, self.logs = url, run_dir, logs
        self.procs: list[Proc] = []
        self.lock = threading.Lock()

    def start(self, role: str) -> Proc:
        command = {"trainer": ["train"], "gpu-serve": ["gpu-serve", "--precision", "fp32"]}.get(role, ["worker"])
        child = children.spawn(role, command, self.url, self.run_dir, self.logs, 1, own_env=True)
        with self.lock:
            incarnation = 1 + sum(p.role == role for p in self.procs)
            proc = Proc(role, child.process, incarnation=incarnation, started=time.monotonic())
            self.procs.append(proc)
        return proc

    def live(self, role: str | None = None) -> list[Proc]:
        with self.lock:
            return [p for p in self.procs if p.process.poll() is None and (role is None or p.role == role)]

    def kill(self, proc: Proc) -> None:
        proc.killed = True
        children.kill(proc)

    def stop_all(self) -> None:
        """Workers (a second SIGTERM cuts their job short), then gpu-serve, then the trainer (it checkpoints)."""
        live = self.live()
        for proc in live:
            proc.killed = True
        children.stop_in_order(live, grace_s=STOP_GRACE_S)


class Sampler(threading.Thread):
    """Every second `weights:latest`; every RSS_EVERY_S the resident memory of every live process."""

    def __init__(self, server: AofRedis, fleet: Fleet) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
        self.server, self.fleet = server, fleet
        self.versions: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        last_rss = 0.0
        while not self.stop.wait(1.0):
            try:
                latest = self.client.get(keys.weights_latest(RUN))
                if latest is not None:
                    self.versions.append(int(latest))
            except (redis.RedisError, OSError):
                pass  # Redis restarting: the next second tries again
            now = time.monotonic()
            if now - last_rss >= RSS_EVERY_S:
                last_rss = now
                for proc in [*self.fleet.live(), *self.server.live()]:
                    found = rss_mb(proc.process.pid)
                    if found is not None and now - proc.started >= RSS_WARMUP_S:
                        proc.rss.append((now, found))


@dataclass
class Injector:
    """Injects the faults in turn; counts them."""

    fleet: Fleet
    server: AofRedis
    log: Callable[[str], None]
    injected: dict[str, int] = field(default_factory=lambda: {name: 0 for name in FAULTS})
    turn: int = 0

    def inject(self) -> None:
        fault = FAULTS[self.turn % len(FAULTS)]
        self.turn += 1
        if fault == "kill-worker":
            workers = sorted((p for p in self.fleet.live() if p.role.startswith("worker")), key=lambda p: p.role)
            if workers:  # each kill takes the next worker in turn
                victim = workers[self.injected[fault] % len(workers)]
                self.fleet.kill(victim)
                self.fleet.start(victim.role)
        elif fault == "kill-gpu-serve":
            for proc in self.fleet.live("gpu-serve"):
                self.fleet.kill(proc)
            time.sleep(SERVER_DOWN_S)
            self.fleet.start("gpu-serve")
        elif fault == "restart-redis":
            self.server.restart()
        else:
            client = redis.Redis.from_url(self.server.url, socket_timeout=5)
            client.rpush(keys.requests(RUN), *GARBAGE)
        self.injected[fault] += 1
        self.log(f"soak: fault {self.turn}: {fault}")


def run(
    settings: Settings,
    *,
    seconds: float,
    workers: int,
    fault_every: float,
    log: Callable[[str], None] = print,
    keep: bool = False,
) -> dict[str, Any]:
    """The soak: the run on loopback for `seconds` with a fault every `fault_every` seconds; the report."""
    folder = Path(tempfile.mkdtemp(prefix="azjobs-system-soak-"))
    (folder / "redis").mkdir()
    (folder / "logs").mkdir()
    server = AofRedis(folder / "redis")
    server.start()
    fleet = Fleet(server.url, folder / RUN, folder / "logs")
    sampler = Sampler(server, fleet)
    injector = Injector(fleet, server, log)
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=10)
        Run(RUN, fleet.run_dir, client).create(settings)
        for role in ("trainer", "gpu-serve", *(f"worker-{i + 1}" for i in range(workers))):
            fleet.start(role)
        log(
            f"soak --system: trainer, gpu-serve and {workers} workers for {seconds:g} s, a fault every "
            f"{fault_every:g} s (logs in {folder / 'logs'})"
        )
        sampler.start()
        unbidden = _run_schedule(fleet, injector, seconds, fault_every)
        sampler.stop.set()
        sampler.join(timeout=10)
        fleet.stop_all()
        report = _report(client, fleet, server, sampler, injector, settings, seconds, unbidden)
    finally:
        sampler.stop.set()
        fleet.stop_all()
        server.stop()
    report["checks_failed"] = failed_checks(report)
    if keep or report["checks_failed"]:
        report["kept"] = str(folder)  # the logs, the run folder and Redis' files, for a look
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _run_schedule(fleet: Fleet, injector: Injector, seconds: float, fault_every: float) -> list[str]:
    """Inject the faults until `seconds` have passed; restart and name any process that died unbidden."""
    began = time.monotonic()
    next_fault = began + fault_every
    unbidden: list[str] = []
    while time.monotonic() < began + seconds:
        time.sleep(0.5)
        with fleet.lock:
            dead = [p for p in fleet.procs if p.process.poll() is not None and not p.killed]
        for proc in dead:
            proc.killed = True  # counted once
            unbidden.append(f"{proc.key} (exit {proc.process.returncode})")
            fleet.start(proc.role)
        if time.monotonic() >= next_fault and time.monotonic() < began + seconds - fault_every / 2:
            injector.inject()
            next_fault += fault_every
    return unbidden


def _shard_files(run_dir: Path) -> dict[str, tuple[str, int, int]]:
    """name -> (job id, games, positions) of every finished shard file of the run."""
    found = {}
    for name in shard_names(replay_dir(run_dir)):
        with h5py.File(replay_dir(run_dir) / name, "r") as f:
            found[name] = (str(f.attrs["job_id"]), int(f.attrs["games"]), int(f.attrs["positions"]))
    return found


def _finished_jobs(client: redis.Redis) -> list[dict[str, Any]]:
    """The return values of the self-play jobs RQ holds as finished."""
    queue = Queue(keys.selfplay_queue(RUN), connection=client, serializer=JSONSerializer)
    ids = queue.finished_job_registry.get_job_ids()
    jobs = [j for j in Job.fetch_many(ids, connection=client, serializer=JSONSerializer) if j is not None]
    return [dict(j.return_value() or {}, id=j.id) for j in jobs]


def _replay_checks(client: redis.Redis, run_dir: Path) -> dict[str, Any]:
    """What the index, the counters and the files on disk say about each other."""
    files = _shard_files(run_dir)
    index = [info.name for info in list_shards(client, RUN)]
    stats = {k: int(v) for k, v in as_text_hash(client.hgetall(keys.stats(RUN))).items()}
    jobs = [job_id for job_id, _, _ in files.values()]
    finished = _finished_jobs(client)
    return {
        "shards_on_disk": len(files),
        "shards_listed": len(index),
        "listed_twice": len(index) - len(set(index)),
        "listed_and_missing": len(set(index) - set(files)),
        "on_disk_not_listed": len(set(files) - set(index)),
        "jobs_in_two_shards": len(jobs) - len(set(jobs)),
        "games_counted": stats.get("games", 0),
        "games_on_disk": sum(games for _, games, _ in files.values()),
        "positions_counted": stats.get("positions", 0),
        "positions_on_disk": sum(positions for _, _, positions in files.values()),
        "finished_jobs": len(finished),
        # A finished job's shard must be listed once, on disk, with the games the job reported.
        "finished_jobs_not_counted_once": sum(
            1
            for job in finished
            if index.count(job.get("shard", "")) != 1
            or files.get(job.get("shard", ""), ("", -1, 0))[1] != job.get("games")
        ),
        "jobs_enqueued": stats.get("jobs_enqueued", 0),
    }


def _memory(procs: list[Proc]) -> dict[str, Any]:
    """Per process run: the mean resident memory of the first and last third of its samples."""
    out = {}
    for proc in procs:
        if len(proc.rss) < RSS_MIN_SAMPLES:
            continue
        third = len(proc.rss) // 3
        first = sum(mb for _, mb in proc.rss[:third]) / third
        last = sum(mb for _, mb in proc.rss[-third:]) / third
        out[proc.key] = {
            "first_mb": round(first, 1),
            "last_mb": round(last, 1),
            "samples": len(proc.rss),
            "flat": last - first <= RSS_SLACK_MB + RSS_SLACK_FRACTION * first,
        }
    return out


def _report(
    client: redis.Redis,
    fleet: Fleet,
    server: AofRedis,
    sampler: Sampler,
    injector: Injector,
    settings: Settings,
    seconds: float,
    unbidden: list[str],
) -> dict[str, Any]:
    versions = sampler.versions
    trainer = as_text_hash(client.hgetall(keys.trainer(RUN)))
    return {
        "bench": "soak-system",
        "game": settings.game,
        "network": f"{settings.net_blocks}x{settings.net_channels}",
        "workers": sum(1 for p in fleet.procs if p.role.startswith("worker") and p.incarnation == 1),
        "seconds": seconds,
        "faults": dict(injector.injected),
        "faults_injected": sum(injector.injected.values()),
        "died_unbidden": unbidden,
        "replay": _replay_checks(client, fleet.run_dir),
        "weights": {
            "first": versions[0] if versions else None,
            "last": versions[-1] if versions else None,
            "samples": len(versions),
            "decreases": sum(1 for a, b in zip(versions, versions[1:]) if b < a),
        },
        "trainer_steps": int(trainer.get("step", 0) or 0),
        "memory": _memory([*fleet.procs, *server.procs]),
    }


def failed_checks(report: dict[str, Any]) -> list[str]:
    """The names of the checks the report fails; [] when nothing was lost, counted twice, or leaked."""
    replay, weights = report["replay"], report["weights"]
    checks = {
        "games counted once": replay["games_counted"] == replay["games_on_disk"]
        and replay["positions_counted"] == replay["positions_on_disk"],
        "finished jobs counted once": replay["finished_jobs_not_counted_once"] == 0,
        "every job in one shard": replay["jobs_in_two_shards"] == 0,
        "no shard listed and missing": replay["listed_and_missing"] == 0 and replay["listed_twice"] == 0,
        "no shard on disk unlisted": replay["on_disk_not_listed"] == 0,
        "weights versions only rising": weights["decreases"] == 0,
        "the run made progress": replay["finished_jobs"] > 0 and (weights["last"] or 0) > (weights["first"] or 0),
        "no process died unbidden": not report["died_unbidden"],
        "memory flat": all(m["flat"] for m in report["memory"].values()),
    }
    return [name for name, passed in checks.items() if not passed]
