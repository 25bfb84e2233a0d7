"""Every Redis key and RQ queue name of a run, from one place (listed in docs/design.md)."""

from __future__ import annotations

PREFIX = "azjobs"


def prefix(run: str) -> str:
    return f"{PREFIX}:{run}:"


def settings(run: str) -> str:
    """string: the run's settings as JSON, written once by whoever creates the run."""
    return f"{PREFIX}:{run}:settings"


def requests(run: str) -> str:
    """list: inference requests (wire format) waiting for a server."""
    return f"{PREFIX}:{run}:requests"


def reply(run: str, client_id: str) -> str:
    """list: inference replies for one client; expires when the client is gone."""
    return f"{PREFIX}:{run}:reply:{client_id}"


def weights(run: str, version: int) -> str:
    """string: safetensors bytes of one weights version (the newest few are kept)."""
    return f"{PREFIX}:{run}:weights:{version}"


def weights_latest(run: str) -> str:
    """string: the newest published weights version (an integer)."""
    return f"{PREFIX}:{run}:weights:latest"


def weights_versions(run: str) -> str:
    """sorted set: the weights versions whose bytes are held in Redis (score = version)."""
    return f"{PREFIX}:{run}:weights:held"


def weights_channel(run: str) -> str:
    """pub/sub channel: the version number of each newly published weights version."""
    return f"{PREFIX}:{run}:weights:announce"


def marker(run: str) -> str:
    """string: the random token also kept in `<run_dir>/marker`: proves a machine sees the run's storage root."""
    return f"{PREFIX}:{run}:marker"


def shards(run: str) -> str:
    """list: one JSON record per replay shard (name, games, positions), oldest first."""
    return f"{PREFIX}:{run}:shards"


def shards_registered(run: str) -> str:
    """set: names of the shards in the index, so a shard (a retried job's, or one rebuilt from disk) counts once."""
    return f"{PREFIX}:{run}:shards:registered"


def stats(run: str) -> str:
    """hash: run-wide counters (games, positions, shards, jobs, leaf evaluations)."""
    return f"{PREFIX}:{run}:stats"


def trainer_lease(run: str) -> str:
    """string with expiry: JSON {host, pid, token} of the one trainer allowed on the run, renewed while it runs."""
    return f"{PREFIX}:{run}:trainer:lease"


def trainer(run: str) -> str:
    """hash: the trainer's progress (step, version, losses, positions trained)."""
    return f"{PREFIX}:{run}:trainer"


def matches(run: str) -> str:
    """list: one JSON record per finished evaluation match (players, games, results), oldest first."""
    return f"{PREFIX}:{run}:matches"


def evals_recorded(run: str) -> str:
    """set: ids of the evaluation records in `matches` and `accuracy`, so a retried job's record counts once."""
    return f"{PREFIX}:{run}:evals:recorded"


def accuracy(run: str) -> str:
    """list: one JSON record per scoring of a player on the run's labelled positions, oldest first."""
    return f"{PREFIX}:{run}:accuracy"


def job_seconds(run: str) -> str:
    """hash: job kind (selfplay, match, accuracy, gate) -> worker-seconds spent in such jobs, run-wide."""
    return f"{PREFIX}:{run}:jobs:seconds"


def eval_schedule(run: str) -> str:
    """hash: the trainer's evaluation schedule: `version` (the newest evaluated), `evaluations` (how many),
    `retired` (JSON: baseline -> why it is no longer played)."""
    return f"{PREFIX}:{run}:evals:schedule"


def ratings(run: str) -> str:
    """hash: player -> JSON {elo, se, games}, the Bradley-Terry fit over all matches (random = 0)."""
    return f"{PREFIX}:{run}:ratings"


def processes(run: str) -> str:
    """set: `role:id` of every process that has joined the run."""
    return f"{PREFIX}:{run}:processes"


def heartbeat(run: str, role: str, process_id: str) -> str:
    """hash: one process's last heartbeat time and its own figures."""
    return f"{PREFIX}:{run}:heartbeat:{role}:{process_id}"


def alive(run: str, role: str, process_id: str) -> str:
    """string with an expiry of DEAD_AFTER_S, set by every heartbeat: a process is alive while it exists
    (Redis' own clock decides, never the clock of a host)."""
    return f"{PREFIX}:{run}:alive:{role}:{process_id}"


def selfplay_queue(run: str) -> str:
    """RQ queue name of the run's self-play jobs (RQ's own key: rq:queue:<name>)."""
    return f"{PREFIX}:{run}:selfplay"


def eval_queue(run: str) -> str:
    """RQ queue name of the run's evaluation jobs."""
    return f"{PREFIX}:{run}:eval"
