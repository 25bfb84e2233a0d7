"""`azjobs doctor`: checks of a run's Redis, storage root, processes and queues, one verdict line each.

Each process of a run sends with its heartbeat what it found when it joined (`facts`: azjobs version,
settings digest, storage marker verdict, the GPU it uses), so the doctor, run on any machine, compares them all.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from azjobs import __version__
from azjobs.cluster import heartbeat, status
from azjobs.cluster.connection import connect, effective_url, redact
from azjobs.errors import AzjobsError
from azjobs.run import SETTINGS_FILE, Run, fetch, read_file
from azjobs.settings import Settings
from azjobs.storage import marker
from azjobs.storage.weights import versions_in

OK, WARN, FAIL = "ok", "warn", "FAIL"
LOW_DISK_BYTES = 1 << 30  # below this free on the storage root: a warning
FULL_DISK_BYTES = 100 << 20  # below this: a failure (shards and checkpoints will not fit)
LOOPBACK = ("127.", "::1", "localhost")


@dataclass(frozen=True)
class Verdict:
    level: str  # ok, warn or FAIL
    check: str  # what was checked, one word
    found: str  # what was found
    fix: str = ""  # what to do about it; empty when ok

    def line(self) -> str:
        text = f"{self.level:<4}  {self.check:<9} {self.found}"
        return f"{text}; fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def settings_digest(settings: Settings) -> str:
    return hashlib.sha256(settings.to_json().encode()).hexdigest()[:12]


def facts(run: Run, settings: Settings, *, cuda: bool = False, device: str | None = None) -> dict[str, str]:
    """What a process found when it joined the run; `cuda` for the roles that want a GPU, `device` the
    one they were given (default: the first GPU, else the CPU): its name and compute capability."""
    assert run.folder is not None, "a role names its run by --run-dir"
    found = {"settings": settings_digest(settings), "storage": marker.check(run.redis, run.name, run.folder)}
    if cuda:
        found.update(_gpu_facts(device))
    return found


def _gpu_facts(device: str | None) -> dict[str, str]:
    import torch

    from azjobs.net import device as devices

    if not torch.cuda.is_available():
        return {"cuda": "not visible"}
    try:
        used = devices.resolve(device)
    except AzjobsError:  # the role itself stops with this message
        return {"cuda": torch.cuda.get_device_name()}
    # On the CPU: the GPU it could have used, so the doctor can say that one is visible.
    return devices.facts(used) if used.type == "cuda" else {"cuda": torch.cuda.get_device_name()}


def diagnose(url: str | None, run_dir: Path, *, interval_s: float = 3.0) -> list[Verdict]:
    """Every check, in order; later checks are skipped when Redis cannot be used."""
    run_dir = Path(run_dir)
    try:
        client = connect(url)
    except AzjobsError as e:  # its message is "what: fix"
        found, _, fix = str(e).partition(": ")
        return [Verdict(FAIL, "redis", found, fix)]
    the_run = Run.at(run_dir, client)
    run = the_run.name
    shown = redact(effective_url(url))
    password = bool(client.connection_pool.connection_kwargs.get("password"))
    verdicts = [Verdict(OK, "redis", f"reachable at {shown}" + (", password accepted" if password else ""))]
    verdicts += _redis_config(client, password)
    stored = fetch(client, run)
    if stored is None:
        verdicts.append(
            Verdict(
                FAIL,
                "run",
                f"Redis knows no run {run!r}",
                f"start `azjobs train --run-dir {run_dir}` (it creates the run), or check --run-dir",
            )
        )
        return verdicts + _storage(the_run, None)
    verdicts.append(
        Verdict(OK, "run", f"{run!r}: {stored.game}, {stored.net_blocks} blocks x {stored.net_channels} channels")
    )
    verdicts += _storage(the_run, stored)
    first = status.collect(client, run)
    if interval_s > 0:
        time.sleep(interval_s)
    second = status.collect(client, run)
    for check in (_processes, _agreement, _cuda, _queues, _weights):
        verdicts += check(the_run, stored, first, second)
    return verdicts


def _config(client: redis.Redis, name: str) -> str | None:
    try:
        values = client.config_get(name)
    except redis.ResponseError:  # CONFIG renamed or disabled by the admin
        return None
    value = values.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _redis_config(client: redis.Redis, password: bool) -> list[Verdict]:
    out = []
    bind = _config(client, "bind")
    if bind is not None and not password and any(not a.lstrip("-").startswith(LOOPBACK) for a in bind.split()):
        out.append(
            Verdict(
                FAIL,
                "security",
                f"Redis listens on {bind} without a password",
                "start it with a password (scripts/start_head.sh or `azjobs redis` set one)",
            )
        )
    appendonly, save = _config(client, "appendonly"), _config(client, "save")
    if appendonly is not None and appendonly == "no" and not save:
        out.append(
            Verdict(
                WARN,
                "persist",
                "Redis keeps nothing on disk: a restart empties the queues "
                "(weights and games come back from the storage root)",
                "run the head's Redis with `azjobs redis` (append-only file on)",
            )
        )
    elif appendonly is not None:
        out.append(Verdict(OK, "persist", f"Redis persists (appendonly {appendonly}, save {save or 'off'!r})"))
    policy = _config(client, "maxmemory-policy")
    if policy is not None and policy != "noeviction":
        out.append(
            Verdict(
                FAIL,
                "memory",
                f"Redis may evict keys (maxmemory-policy {policy}): RQ jobs would vanish",
                "set maxmemory-policy noeviction",
            )
        )
    return out


def _storage(run: Run, stored: Settings | None) -> list[Verdict]:
    assert run.folder is not None, "the doctor looks at the run's folder"
    run_dir = run.folder
    if not run_dir.is_dir():
        return [
            Verdict(
                FAIL,
                "storage",
                f"{run_dir} is not reachable from this machine",
                "mount the shared storage root here and pass the run's folder as --run-dir",
            )
        ]
    out = []
    verdict = marker.check(run.redis, run.name, run_dir)
    if verdict == "ok":
        out.append(Verdict(OK, "storage", f"{run_dir} is the run's folder (marker matches Redis)"))
    else:
        out.append(Verdict(FAIL, "storage", verdict, "pass the run's folder on the shared storage root as --run-dir"))
    on_disk = read_file(run_dir)
    if stored is not None and on_disk is not None and on_disk != stored:
        out.append(
            Verdict(
                FAIL,
                "settings",
                f"{run_dir / SETTINGS_FILE} differs from the run's settings in Redis",
                "use the run's own folder, or a new run name",
            )
        )
    probe = run_dir / f".doctor-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"azjobs doctor")
        probe.unlink()
    except OSError as e:
        out.append(
            Verdict(
                FAIL,
                "writable",
                f"cannot write in {run_dir} ({e.strerror})",
                "free space or fix the permissions of the storage root",
            )
        )
        return out
    free = shutil.disk_usage(run_dir).free
    level = FAIL if free < FULL_DISK_BYTES else WARN if free < LOW_DISK_BYTES else OK
    out.append(
        Verdict(
            level,
            "disk",
            f"{free / (1 << 30):.1f} GiB free on the storage root",
            "" if level == OK else "free space: old runs, replay/bad/, old weights versions",
        )
    )
    return out


def _alive(snap: status.Snapshot, role: str) -> list[dict[str, str]]:
    return [p for p in snap.processes if p.get("role") == role and p.get("alive") == "True"]


def _where(p: dict[str, str]) -> str:
    return f"{p.get('role', '?')} {p['id']} on {p.get('host', '?')}"


def _processes(run: Run, settings: Settings, first: status.Snapshot, snap: status.Snapshot) -> list[Verdict]:
    out = []
    starts = {
        "trainer": "azjobs train (scripts/start_gpu.sh)",
        "gpu-serve": "azjobs gpu-serve (scripts/start_gpu.sh)",
        "worker": "azjobs worker (scripts/start_worker.sh)",
    }
    for role, command in starts.items():
        alive = _alive(snap, role)
        if alive:
            hosts = sorted({p.get("host", "?") for p in alive})
            out.append(Verdict(OK, role, f"{len(alive)} alive on {', '.join(hosts)}"))
        else:
            out.append(Verdict(FAIL, role, "none alive", f"start {command} for --run-dir {run.folder}"))
    now = time.time()
    for p in snap.processes:
        if p.get("alive") != "True":
            silent = now - float(p.get("time", 0))
            out.append(
                Verdict(
                    WARN,
                    "silent",
                    f"{_where(p)}: no heartbeat for {silent:,.0f} s (limit {heartbeat.DEAD_AFTER_S:g} s)",
                    "it died or lost Redis: see its log, restart it (it resumes)",
                )
            )
    return out


def _agreement(run: Run, settings: Settings, first: status.Snapshot, snap: status.Snapshot) -> list[Verdict]:
    live = [p for p in snap.processes if p.get("alive") == "True"]
    out = []
    versions = {p.get("azjobs", "?") for p in live} | {__version__}
    if len(versions) > 1:
        odd = [f"{_where(p)} runs {p.get('azjobs', 'an older one')}" for p in live if p.get("azjobs") != __version__]
        out.append(
            Verdict(
                FAIL,
                "versions",
                f"this is azjobs {__version__}; " + "; ".join(odd),
                "install the same azjobs everywhere, then restart those processes",
            )
        )
    else:
        out.append(Verdict(OK, "versions", f"every live process runs azjobs {__version__}"))
    digest = settings_digest(settings)
    odd = [_where(p) for p in live if p.get("settings") not in (None, digest)]
    if odd:
        out.append(
            Verdict(
                FAIL,
                "settings",
                f"{', '.join(odd)} joined with other settings than the run's",
                "restart them: they read the run's settings when they start",
            )
        )
    bad = [f"{_where(p)}: {p['storage']}" for p in live if p.get("storage") not in (None, "ok", "no marker yet")]
    if bad:
        out.append(
            Verdict(
                FAIL,
                "shared",
                "; ".join(bad),
                "mount the same storage root on every machine and pass the run's folder as --run-dir",
            )
        )
    elif live:
        out.append(Verdict(OK, "shared", "every live process sees the same storage root (marker)"))
    return out


def _cuda(run: Run, settings: Settings, first: status.Snapshot, snap: status.Snapshot) -> list[Verdict]:
    """The device each GPU role actually runs on, with the card's name, capability and precision."""
    out = []
    for p in [*_alive(snap, "trainer"), *_alive(snap, "gpu-serve")]:
        cuda = p.get("cuda", "")
        if p.get("device", "").startswith("cuda"):
            card = ", ".join(
                part
                for part in (
                    cuda or "a GPU",
                    p.get("cuda_capability") and f"capability {p['cuda_capability']}",
                    p.get("precision"),
                )
                if part
            )
            out.append(Verdict(OK, "cuda", f"{_where(p)} runs on {p['device']} ({card})"))
        elif cuda and cuda != "not visible":
            out.append(
                Verdict(
                    WARN,
                    "cuda",
                    f"{_where(p)} runs on {p.get('device')} though {cuda} is visible",
                    "restart it without --device cpu",
                )
            )
        else:
            out.append(
                Verdict(
                    WARN,
                    "cuda",
                    f"{_where(p)} runs on the CPU: CUDA is not visible there",
                    "on a GPU machine install a CUDA build of torch and check nvidia-smi",
                )
            )
    return out


def _queues(run: Run, settings: Settings, first: status.Snapshot, snap: status.Snapshot) -> list[Verdict]:
    """Each queue's jobs taken (by live workers) and the inference requests served (by a live gpu-serve)."""
    out = []
    workers = bool(_alive(snap, "worker"))
    # Workers busy with another queue's jobs (evaluation comes first) leave self-play waiting: not a fault.
    busy = any(c["running"] for c in snap.queues.values())
    for name, counts in snap.queues.items():
        out += _queue_verdicts(name.rsplit(":", 1)[-1], first.queues[name], counts, workers, busy)
    out.append(_requests_verdict(first, snap))
    return out


def _queue_verdicts(
    short: str, before: dict[str, int], counts: dict[str, int], workers: bool, busy: bool
) -> list[Verdict]:
    """One queue's counts now against those of the first look (`before`); `workers`: any live worker."""
    out = []
    moved = busy or counts["finished"] + counts["failed"] > before["finished"] + before["failed"]
    if counts["queued"] and not workers:
        out.append(
            Verdict(
                FAIL,
                "queues",
                f"{counts['queued']} {short} jobs queued, no live worker",
                "start workers (scripts/start_worker.sh)",
            )
        )
    elif counts["queued"] and not counts["running"] and not moved:
        out.append(
            Verdict(
                FAIL, "queues", f"{counts['queued']} {short} jobs queued and none taken", "look at the workers' logs"
            )
        )
    elif counts["queued"] or counts["running"]:
        out.append(
            Verdict(
                OK,
                "queues",
                f"{short}: {counts['queued']} queued, {counts['running']} running, {counts['finished']} finished",
            )
        )
    if counts["failed"]:
        out.append(
            Verdict(
                WARN,
                "failed",
                f"{counts['failed']} {short} jobs failed",
                "read their errors in `azjobs dashboard` (Failed jobs)",
            )
        )
    return out


def _requests_verdict(first: status.Snapshot, snap: status.Snapshot) -> Verdict:
    """Inference requests waiting: served, or waiting for no live gpu-serve, or for one that serves none."""
    pending = snap.pending_requests
    servers, servers_before = _alive(snap, "gpu-serve"), _alive(first, "gpu-serve")
    served = sum(int(p.get("positions", 0) or 0) for p in servers)
    served_before = sum(int(p.get("positions", 0) or 0) for p in servers_before)
    # The servers' counters move with their heartbeats: judge only when one beat between the two looks.
    beat_between = max((float(p.get("time", 0)) for p in servers), default=0.0) > max(
        (float(p.get("time", 0)) for p in servers_before), default=0.0
    )
    if pending and not servers:
        return Verdict(
            FAIL,
            "requests",
            f"{pending} inference requests waiting, no live gpu-serve",
            "start azjobs gpu-serve (scripts/start_gpu.sh)",
        )
    if pending and first.pending_requests and beat_between and served == served_before:
        return Verdict(
            FAIL, "requests", f"{pending} inference requests waiting and none served", "look at gpu-serve's log"
        )
    return Verdict(OK, "requests", f"{pending} inference requests waiting")


def _weights(run: Run, settings: Settings, first: status.Snapshot, snap: status.Snapshot) -> list[Verdict]:
    assert run.folder is not None, "the doctor looks at the run's folder"
    run_dir = run.folder
    on_disk = versions_in(run_dir / "weights")
    latest = snap.weights_version
    if latest is None:
        return [Verdict(WARN, "weights", "no weights published yet", "start the trainer: it publishes at start")]
    if not on_disk or on_disk[-1] < latest:
        return [
            Verdict(
                FAIL,
                "weights",
                f"version {latest} is in Redis but not in {run_dir / 'weights'}",
                "this machine's --run-dir is not the run's shared folder",
            )
        ]
    return [Verdict(OK, "weights", f"version {latest}, on the storage root too")]


def render(verdicts: list[Verdict]) -> str:
    return "\n".join(v.line() for v in verdicts)


def failed(verdicts: list[Verdict]) -> bool:
    return any(v.level == FAIL for v in verdicts)


def as_json(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [v.to_dict() for v in verdicts]


__all__ = ["Verdict", "diagnose", "facts", "failed", "render", "settings_digest"]
