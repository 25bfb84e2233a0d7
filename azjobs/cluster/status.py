"""A run's state read from Redis: for `azjobs status` and the live view of `azjobs run`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from rich.console import Group, RenderableType
from rich.table import Column, Table
from rich.text import Text
from rq import Queue
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.connection import as_text_hash
from azjobs.eval import cost, records
from azjobs.settings import FIELD_TYPES, PROCESS_SETTINGS, Settings, SettingsError, process_settings


@dataclass(frozen=True)
class Snapshot:
    run: str
    time: float
    stats: dict[str, str]
    trainer: dict[str, str]
    weights_version: int | None
    queues: dict[str, dict[str, int]]
    processes: list[dict[str, str]]
    pending_requests: int
    ratings: dict[str, dict[str, float]] = field(default_factory=dict)  # player -> elo, se, games; best first
    accuracy: list[dict[str, Any]] = field(default_factory=list)  # the newest version's scores (one per sims)
    run_settings: dict[str, Any] = field(default_factory=dict)  # the run's stored value of each process setting
    overrides: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # "role:id" -> its own values, where not the run's
    evaluation: dict[str, Any] = field(default_factory=dict)  # evaluation's cost and schedule (`evaluation`)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def collect(client: redis.Redis, run: str) -> Snapshot:
    queues = {}
    for name in (keys.selfplay_queue(run), keys.eval_queue(run)):
        q = Queue(name, connection=client, serializer=JSONSerializer)
        queues[name] = {
            "queued": q.count,
            "running": q.started_job_registry.count,
            "finished": q.finished_job_registry.count,
            "failed": q.failed_job_registry.count,
        }
    latest = client.get(keys.weights_latest(run))
    processes = heartbeat.read_all(client, run)
    settings = stored_settings(client, run)
    stored = _run_values(settings)
    return Snapshot(
        run=run,
        time=time.time(),
        stats=as_text_hash(client.hgetall(keys.stats(run))),
        trainer=as_text_hash(client.hgetall(keys.trainer(run))),
        weights_version=int(latest) if latest is not None else None,
        queues=queues,
        processes=processes,
        pending_requests=int(client.llen(keys.requests(run))),
        ratings=records.read_ratings(client, run),
        accuracy=_newest_accuracy(client, run),
        run_settings=stored,
        overrides=_overrides(processes, stored),
        evaluation=evaluation(client, run, settings),
    )


# The heartbeat field of each process setting a role beats (gpu-serve has always beaten its batch size).
BEAT_FIELDS: dict[str, dict[str, str]] = {
    "gpu-serve": {"inference_batch_size": "batch_size", "inference_wait_ms": "inference_wait_ms"},
    "trainer": {name: name for name in process_settings("train")},
}


def stored_settings(client: redis.Redis, run: str) -> Settings | None:
    """The run's settings in Redis; None while it holds none (or none readable)."""
    raw = client.get(keys.settings(run))
    try:
        return Settings.from_json(raw) if raw is not None else None
    except SettingsError:  # `azjobs doctor` names damaged settings; status shows the rest
        return None


def _run_values(stored: Settings | None) -> dict[str, Any]:
    """The run's stored value of each process setting; {} without stored settings."""
    return {name: getattr(stored, name) for name in PROCESS_SETTINGS} if stored is not None else {}


def evaluation(client: redis.Redis, run: str, settings: Settings | None) -> dict[str, Any]:
    """Evaluation's cost (worker-seconds by kind of job, its share, the budget) and the trainer's schedule:
    the last version evaluated, how many were, why the next waits, the retired baselines with why."""
    schedule = as_text_hash(client.hgetall(keys.eval_schedule(run)))
    try:
        retired = json.loads(schedule.get("retired") or "{}")
    except ValueError:
        retired = {}
    return {
        **cost.read(client, run).to_dict(),
        "budget": settings.eval_budget if settings is not None else None,
        "evaluated": int(schedule.get("version", 0) or 0),
        "evaluations": int(schedule.get("evaluations", 0) or 0),
        "waiting": schedule.get("waiting", ""),
        "retired": retired if isinstance(retired, dict) else {},
    }


def evaluation_lines(evaluation: dict[str, Any]) -> list[tuple[str, str]]:
    """What `status` and the summary of `azjobs run` say of evaluation: its share, how many, the retired."""
    if not evaluation:
        return []
    spent = cost.Cost(dict(evaluation.get("seconds", {})))
    lines = [("evaluation's share", cost.describe(spent, evaluation.get("budget")))]
    if evaluation.get("evaluations"):
        lines.append(("versions evaluated", f"{evaluation['evaluations']} (the last: {evaluation['evaluated']})"))
    if evaluation.get("retired"):
        lines.append(("baselines retired", ", ".join(evaluation["retired"])))
    return lines


def own_values(process: dict[str, str]) -> dict[str, Any]:
    """The process settings a process runs with, from its heartbeat (none from one that beats none)."""
    out = {}
    for name, beat_field in BEAT_FIELDS.get(process.get("role", ""), {}).items():
        try:
            out[name] = FIELD_TYPES[name](process[beat_field])
        except (KeyError, ValueError):  # an older azjobs, or a server still waiting for weights
            continue
    return out


def _overrides(processes: list[dict[str, str]], stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for p in processes:
        own = {name: value for name, value in own_values(p).items() if name in stored and value != stored[name]}
        if own:
            out[f"{p.get('role')}:{p['id']}"] = own
    return out


def _newest_accuracy(client: redis.Redis, run: str) -> list[dict[str, Any]]:
    """The accuracy records of the newest version scored (with search, and the network alone)."""
    scored = [r for r in records.read(client, run, records.AccuracyRecord) if r.version]
    if not scored:
        return []
    newest = max(r.version.get("version", 0) for r in scored)
    chosen = [r for r in scored if r.version.get("version", 0) == newest]
    return [
        {
            "player": r.player,
            "sims": r.sims,
            "positions": r.positions,
            "weak_accuracy": r.weak_accuracy,
            "strong_accuracy": r.strong_accuracy,
            "step": r.version.get("step"),
        }
        for r in sorted(chosen, key=lambda r: -r.sims)
    ]


def _false_resigns(stats: dict[str, str]) -> str:
    """The false-resignation rate of the played-out games, e.g. `2 of 40 (5.0%)`."""
    checked, false = int(stats.get("resign_checked", 0)), int(stats.get("false_resigns", 0))
    return f"{false} of {checked} ({false / checked:.1%})" if checked else "none measured yet"


def _num(value: str | None, digits: int = 0) -> str:
    if value in (None, ""):
        return "-"
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:,.{digits}f}"


def render(snap: Snapshot, *, title: str | None = None, previous: Snapshot | None = None) -> Group:
    """One screen: totals, trainer, queues and every process of the run."""
    st, tr = snap.stats, snap.trainer
    rate = ""
    if previous is not None and snap.time > previous.time:
        dt = snap.time - previous.time
        d_games = int(st.get("games", 0)) - int(previous.stats.get("games", 0))
        rate = f"  ({d_games / dt * 60:,.0f} games/min)"
    summary = Table.grid(padding=(0, 2))
    summary.add_row("games", _num(st.get("games")) + rate, "positions", _num(st.get("positions")))
    summary.add_row("weights version", str(snap.weights_version or "-"), "training step", _num(tr.get("step")))
    summary.add_row(
        "loss (policy / value)",
        f"{_num(tr.get('policy_loss'), 3)} / {_num(tr.get('value_loss'), 3)}",
        "steps/s",
        _num(tr.get("steps_per_s"), 1),
    )
    servers = [p for p in snap.processes if p.get("role") == "gpu-serve" and p.get("alive") == "True"]
    evals = sum(float(p.get("evals_per_s", 0) or 0) for p in servers)
    summary.add_row("evaluations/s", f"{evals:,.0f}", "pending requests", str(snap.pending_requests))
    if tr.get("waiting"):
        summary.add_row("trainer", Text(tr["waiting"], style="yellow"), "", "")
    if "resigned" in st:
        summary.add_row("resigned games", _num(st.get("resigned")), "false resignations", _false_resigns(st))
    for name, value in evaluation_lines(snap.evaluation):
        summary.add_row(name, value, "", "")

    queues = Table("queue", "queued", "running", "finished", "failed", title="queues", title_justify="left")
    for name, counts in snap.queues.items():
        queues.add_row(name, *(str(counts[c]) for c in ("queued", "running", "finished", "failed")))

    # Host names of up to 64 characters (and ids, host-pid) fold over lines rather than end in an ellipsis.
    procs = Table(
        "role",
        Column("id", overflow="fold"),
        "state",
        Column("figures / host, CPU, memory, device", overflow="fold"),
        title="machines",
        title_justify="left",
    )
    for m in machines(snap):
        state = Text("alive", style="green") if m["state"] == "alive" else Text("dead", style="red")
        where = f"{m['host']}  CPU {m['cpu']}  memory {m['memory']}  device {m['device']}"
        procs.add_row(m["role"], m["id"], state, Text(m["figures"]) + Text("\n" + where, style="dim"))
    head = Text(title or f"azjobs run {snap.run}", style="bold")
    parts: list[RenderableType] = [head, summary]
    for line in _strength_lines(snap):
        summary.add_row(*line)
    parts.extend([queues, procs])
    if snap.ratings:
        parts.append(_ratings_table(snap.ratings))
    return Group(*parts)


def machines(snap: Snapshot) -> list[dict[str, str]]:
    """Every process of the run as one row of the machines table (`azjobs status` and `azjobs web`):
    role, id, host, state, CPU (100% = one core), memory, device and the role's own figures."""
    return [
        {
            "role": p.get("role", "?"),
            "id": p["id"],
            "host": p.get("host", "?"),
            "state": "alive" if p.get("alive") == "True" else "dead",
            "cpu": f"{_num(p.get('cpu_percent'))}%" if p.get("cpu_percent") else "-",
            "memory": f"{_num(p.get('rss_mb'))} MiB" if p.get("rss_mb") else "-",
            "device": device_of(p),
            "figures": _figures(p, snap.run_settings),
        }
        for p in snap.processes
    ]


def device_of(p: dict[str, str]) -> str:
    """`NVIDIA H100 (cuda:0), 1,234 of 81,559 MiB` where a process runs on CUDA, else `cpu`."""
    device = p.get("device", "")
    if p.get("role") == "worker" and not device:
        return "cpu"  # a worker's search runs on its CPU; a local evaluator's device is in its figures
    if not device.startswith("cuda"):
        return device or "cpu"
    name = p.get("cuda", "")
    used = p.get("gpu_memory_mb")
    memory = f", {_num(used)} of {_num(p.get('gpu_memory_total_mb'))} MiB" if used else ""
    return f"{name} ({device}){memory}" if name and name != "not visible" else f"{device}{memory}"


RATINGS_SHOWN = 8  # rows of the ratings table: the best, and always the baselines and the newest version


def _strength_lines(snap: Snapshot) -> list[tuple[str, str, str, str]]:
    rows = []
    for a in snap.accuracy:
        who = f"{a['player']}, {a['sims']} sims" if a["sims"] else f"{a['player']}, network alone"
        rows.append(
            (
                f"accuracy ({who})",
                f"weak {a['weak_accuracy']:.1%}  strong {a['strong_accuracy']:.1%}",
                "positions",
                str(a["positions"]),
            )
        )
    return rows


def _ratings_table(table: dict[str, dict[str, float]]) -> Table:
    nets = [p for p in table if p.startswith("net:")]
    newest = max(nets, key=lambda p: int(p.split(":")[1])) if nets else None
    shown = [p for i, p in enumerate(table) if i < RATINGS_SHOWN or not p.startswith("net:") or p == newest]
    out = Table("player", "Elo", "±", "games", title="ratings (random = 0)", title_justify="left")
    for player in shown:
        r = table[player]
        out.add_row(
            player + (" (newest)" if player == newest else ""), f"{r['elo']:.0f}", f"{r['se']:.0f}", str(r["games"])
        )
    return out


def _own(p: dict[str, str], name: str, stored: dict[str, Any], unit: str = "") -> str:
    """A process setting as the process runs it, e.g. `25 steps`, with `(run: 100)` where the run's differs."""
    value = own_values(p).get(name)
    if value is None:
        return p.get(BEAT_FIELDS[p.get("role", "")][name], "-") + unit
    run = stored.get(name, value)
    return f"{value:g}{unit}" + ("" if value == run else f" (run: {run:g})")


def _figures(p: dict[str, str], stored: dict[str, Any]) -> str:
    role = p.get("role")
    if role == "gpu-serve":
        return (
            f"v{p.get('weights_version', '-')} {p.get('device', '')} {p.get('precision', '')}  "
            f"{_num(p.get('batches_per_s'), 1)} batches/s  fill {_num(p.get('batch_fill'), 2)} of "
            f"{_own(p, 'inference_batch_size', stored)}  wait up to {_own(p, 'inference_wait_ms', stored, ' ms')}  "
            f"{_num(p.get('evals_per_s'))} evals/s  "
            f"forward {_num(p.get('forward_ms'), 1)} ms  gather {_num(p.get('wait_ms'), 1)} ms  "
            f"queue wait {_num(p.get('queue_wait_ms'), 1)} ms  dropped {p.get('dropped', '0')}"
        )
    if role == "trainer":
        cadence = (
            f"  publish every {_own(p, 'publish_every_steps', stored, ' steps')}, checkpoint every "
            f"{_own(p, 'checkpoint_every_steps', stored, ' steps')}, evaluate every "
            f"{_own(p, 'eval_every_versions', stored, ' versions')}, "
            f"queue {_own(p, 'selfplay_queue_depth', stored, ' jobs')}"
            if own_values(p)
            else ""
        )
        losses = (
            f"  loss {_num(p.get('policy_loss'), 3)} / {_num(p.get('value_loss'), 3)}  "
            f"{_num(p.get('steps_per_s'), 1)} steps/s"
            if "policy_loss" in p
            else ""
        )
        return f"step {p.get('step', '-')}  v{p.get('version', '-')}  {p.get('device', '')}{losses}{cadence}"
    if role == "worker":
        job = p.get("job") or "idle"
        return f"evaluator {p.get('evaluator', '-')}  jobs done {p.get('jobs_done', '-')}  now {job}"
    return ""
