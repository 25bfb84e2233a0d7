"""Run-wide TensorBoard curves read from the run's Redis: self-play totals and the inference servers'
figures, written by the trainer beside its losses so one `tensorboard --logdir <run_dir>/logs` shows all."""

from __future__ import annotations

from typing import Any

import redis

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.connection import as_text_hash


def record_run(writer: Any, client: redis.Redis, run: str, step: int) -> None:
    """Add the run's self-play and inference scalars at training step `step` to a SummaryWriter."""
    stats = {k: int(v) for k, v in as_text_hash(client.hgetall(keys.stats(run))).items() if v.isdigit()}
    for name in ("games", "positions", "jobs"):
        if name in stats:
            writer.add_scalar(f"selfplay/{name}", stats[name], step)
    if stats.get("resign_checked"):  # played-out games where a player would have resigned: share not lost
        writer.add_scalar("selfplay/false_resign_rate", stats.get("false_resigns", 0) / stats["resign_checked"], step)
    servers = [p for p in heartbeat.read_all(client, run) if p.get("role") == "gpu-serve" and p["alive"] == "True"]
    if servers:
        writer.add_scalar("inference/evals_per_s", sum(_float(p, "evals_per_s") for p in servers), step)
        writer.add_scalar("inference/batch_fill", sum(_float(p, "batch_fill") for p in servers) / len(servers), step)
        writer.add_scalar("inference/servers", len(servers), step)
    writer.add_scalar("inference/pending_requests", int(client.llen(keys.requests(run))), step)


def _float(process: dict[str, str], name: str) -> float:
    try:
        return float(process.get(name, 0) or 0)
    except ValueError:
        return 0.0
