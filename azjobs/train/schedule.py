"""What the trainer asks of the run, and when: self-play jobs kept `selfplay_queue_depth` deep, the
train/play ratio's two bounds (self-play paused below `min_train_per_position`, training waiting above
`max_train_per_position`), the replay window, and each new version served or staged for its gate, with
its evaluation queued when it is due: `eval_every_versions` apart, within `eval_budget` of the workers'
time, against the baselines not yet retired."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cluster.connection import as_text_hash
from azjobs.eval import cost, records, retire
from azjobs.eval.match import MatchRecord
from azjobs.eval.positions import load_positions, resolve_positions
from azjobs.games import Game
from azjobs.jobs import evaluate
from azjobs.jobs.seeds import new_seed
from azjobs.players.specs import PREVIOUS, opponent_list
from azjobs.settings import Settings
from azjobs.storage.atomic import write_atomic
from azjobs.storage.replay import powerlaw_window
from azjobs.storage.weights import WeightStore

SELFPLAY_JOB = "azjobs.jobs.selfplay.selfplay"
JOB_TIMEOUT_S = 4 * 3600  # a job that hangs longer than this (e.g. no server for hours) fails in RQ
RESULT_TTL_S = 24 * 3600  # job summaries stay visible in rq-dashboard for a day


@dataclass(frozen=True)
class Counts:
    """The figures the train/play ratio compares."""

    held: int  # positions in the replay buffer
    made: int  # positions the run has made: its Redis counter, or those loaded if more
    trained: int  # samples trained, over all the trainer's restarts


# Self-play.


def selfplay_queue(client: redis.Redis, run: str) -> Queue:
    return Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)


def positions_made(client: redis.Redis, run: str) -> int:
    """The run's `positions` counter: what its workers have registered."""
    return int(client.hget(keys.stats(run), "positions") or 0)


def top_up_queue(client: redis.Redis, run: str, queue: Queue, depth: int, *, simulations: int | None = None) -> int:
    """Enqueue self-play jobs until `depth` are waiting; returns how many were added. With `simulations`
    (progressive simulations), each job searches with that many instead of num_simulations."""
    missing = depth - queue.count
    for _ in range(max(0, missing)):
        number = int(client.hincrby(keys.stats(run), "jobs_enqueued", 1))
        queue.enqueue_call(
            SELFPLAY_JOB,
            args=(run, new_seed()),  # random, not the counter: a restored Redis resets that
            kwargs={} if simulations is None else {"simulations": simulations},
            timeout=JOB_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
            description=f"selfplay {run} #{number}",
            retry=Retry(max=1),
        )
    return max(0, missing)


# The train/play ratio and the replay window.


def why_pause_selfplay(settings: Settings, counts: Counts) -> str:
    """Empty unless training lags behind `min_train_per_position` (new games would go unused); then why."""
    s = settings
    if not s.min_train_per_position or counts.held < s.min_replay_positions:
        return ""
    # A batch of slack, so that a paused self-play always leaves the trainer room for a step.
    if counts.trained + s.batch_size >= s.min_train_per_position * counts.made:
        return ""
    return f"self-play paused: training is below {s.min_train_per_position:g} samples per position"


def why_wait(settings: Settings, counts: Counts) -> str:
    """Empty when a step may be taken; else the reason to wait for more self-play."""
    s = settings
    if counts.held < s.min_replay_positions:
        return f"waiting for {s.min_replay_positions} positions (have {counts.held})"
    if counts.trained + s.batch_size > s.max_train_per_position * counts.made:
        return f"trained each position {s.max_train_per_position:g} times on average; waiting for new games"
    return ""


def replay_window(settings: Settings, made: int) -> int:
    """How many of the newest positions a batch is drawn from: all held, or KataGo's growing window."""
    s = settings
    if not s.replay_window_min_rows:
        return s.replay_buffer_size
    grown = powerlaw_window(made, s.replay_window_min_rows, s.replay_window_exponent, s.replay_window_expand)
    return min(s.replay_buffer_size, grown)


# New versions and their evaluations.


def publish(
    store: WeightStore,
    run_dir: Path,
    settings: Settings,
    version: int,
    step: int,
    data: bytes,
    log: Callable[[str], None],
) -> None:
    """Serve `version` (or, with gating, stage it and queue its gate) and queue its evaluation if due."""
    client, run, s = store.redis, store.run, settings
    if s.gating and version > 1:
        store.stage(version, data)
        evaluate.enqueue_gate(client, run, version)
        log(f"trainer: staged weights version {version} at step {step} for its gate")
    else:
        store.publish(version, data)
        log(f"trainer: published weights version {version} at step {step}")
    evaluate_if_due(client, run, run_dir, s, version, log)


@dataclass(frozen=True)
class Evaluated:
    """The run's scheduled evaluations so far."""

    last: int  # the newest version evaluated (0: none yet)
    count: int  # how many were queued


def evaluated(client: redis.Redis, run: str) -> Evaluated:
    """From the schedule's hash; where Redis lost it, from the evaluation records (the versions they rate)."""
    raw = as_text_hash(client.hgetall(keys.eval_schedule(run)))
    if "version" in raw:
        return Evaluated(int(raw["version"]), int(raw.get("evaluations", 0)))
    matches = records.read(client, run, MatchRecord)
    versions = {v for m in matches if m.purpose == "schedule" and (v := retire.own_version(m.a))}
    versions |= {int(a.version["version"]) for a in records.read(client, run, records.AccuracyRecord) if a.version}
    return Evaluated(max(versions, default=0), len(versions))


def why_not_evaluate(settings: Settings, version: int, done: Evaluated, spent: cost.Cost, pending: int) -> str:
    """Empty when `version` is to be evaluated now; else why not. A version is a candidate once it is
    eval_every_versions past the last evaluated; then, under eval_budget, only when no evaluation job is
    pending and the share of the workers' time, with one more evaluation of the mean cost so far, stays
    within the budget. So evaluations come by the workers' time, not by the count of versions."""
    s = settings
    if not s.eval_every_versions:
        return "scheduled evaluation is off (eval_every_versions = 0)"
    if done.last and version - done.last < s.eval_every_versions:
        return f"version {version} is within eval_every_versions ({s.eval_every_versions}) of version {done.last}"
    if s.eval_budget >= 1 or not done.count:
        return ""
    if pending:
        return f"{pending} evaluation jobs are still queued or running"
    expected = spent.eval_seconds / done.count
    if spent.share_after(expected) > s.eval_budget:
        return (
            f"evaluation has taken {spent.share:.1%} of the workers' time; one more (about {expected:.0f} s) "
            f"would pass eval_budget ({s.eval_budget:g})"
        )
    return ""


def retired_baselines(client: redis.Redis, run: str, settings: Settings) -> dict[str, str]:
    """The baselines of eval_opponents later versions no longer play (`azjobs.eval.retire`), with why."""
    s, found = settings, evaluate.baselines(settings)
    if s.eval_retire_score >= 1 or not found:
        return {}
    keep_one = PREVIOUS not in opponent_list(s.eval_opponents)
    return retire.retired(records.read(client, run, MatchRecord), found, s.eval_retire_score, keep_one=keep_one)


def evaluate_if_due(
    client: redis.Redis, run: str, run_dir: Path, settings: Settings, version: int, log: Callable[[str], None]
) -> int:
    """Queue the scheduled evaluation of `version` if it is due (`why_not_evaluate`); jobs queued. The
    schedule's hash keeps what status shows: the last evaluated, why the next waits, the retired baselines."""
    if not settings.eval_every_versions:
        return 0
    done = evaluated(client, run)
    why = why_not_evaluate(settings, version, done, cost.read(client, run), evaluate.pending(client, run))
    if why:
        client.hset(keys.eval_schedule(run), "waiting", why)
        return 0
    retired = retired_baselines(client, run, settings)
    before = json.loads(client.hget(keys.eval_schedule(run), "retired") or "{}")
    for baseline in sorted(retired.keys() - before.keys()):
        log(f"trainer: baseline {baseline} retired from the evaluations: {retired[baseline]}")
    queued = evaluate.enqueue_version(
        client, run, run_dir, settings, version, previous=done.last, retired=retired, ladder=not done.count
    )
    state = {"version": version, "evaluations": done.count + 1, "retired": json.dumps(retired), "waiting": ""}
    client.hset(keys.eval_schedule(run), mapping={k: str(v) for k, v in state.items()})
    log(f"trainer: queued {queued} evaluation jobs for version {version}")
    return queued


def copy_positions(settings: Settings, game: Game, run_dir: Path, log: Callable[[str], None]) -> None:
    """Copy the eval_positions set (a bundled set's name or a file; checked first) into the run, where
    every worker finds it, unless it is there already."""
    setting = settings.eval_positions
    target = records.evals_dir(run_dir) / records.POSITIONS_FILE
    if not setting or target.exists():
        return
    source = resolve_positions(setting)
    load_positions(source, game)  # AzjobsError naming the line if it is not a labelled set
    write_atomic(target, source.read_bytes())
    log(f"trainer: labelled positions {setting} copied to {target}")
