"""Evaluation jobs (queue `azjobs:<run>:eval`): matches between players, accuracy on labelled
positions, and the gate a new weights version must pass when gating is on.

Each job records its result under `<run_dir>/evals/` and in Redis (`azjobs.eval.records`);
the trainer refits the ratings from them. The `enqueue_*` functions are what the trainer
(and `azjobs eval`) call; the jobs run in `azjobs worker`, which takes this queue first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from redis import Redis
from rq import Queue, Retry, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.eval import records
from azjobs.eval.match import MatchRecord, play_match
from azjobs.eval.positions import load_positions
from azjobs.eval.strength import measure
from azjobs.games import Game, get_game
from azjobs.jobs import context
from azjobs.jobs.configs import search_config
from azjobs.jobs.seeds import new_seed
from azjobs.net.weights import read_metadata
from azjobs.players import NetPlayer, Player, PlayerSpec, make_player, weights_from_store
from azjobs.players.specs import PREVIOUS, opponent_list
from azjobs.run import Run
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore

MATCH_JOB = "azjobs.jobs.evaluate.match"
ACCURACY_JOB = "azjobs.jobs.evaluate.accuracy"
GATE_JOB = "azjobs.jobs.evaluate.gate"
JOB_TIMEOUT_S = 4 * 3600
RESULT_TTL_S = 7 * 24 * 3600  # evaluation summaries stay visible in rq-dashboard for a week


@dataclass
class EvalContext:
    """What an evaluation needs: the run, its settings and game, and its weights."""

    redis: Redis
    run: str
    run_dir: Path
    settings: Settings
    game: Game
    store: WeightStore
    device: str = "cpu"

    @classmethod
    def create(cls, run: Run, settings: Settings, device: str = "cpu") -> EvalContext:
        assert run.folder is not None, "an evaluation reads the run's folder"
        store = WeightStore(run.redis, run.name, run.folder, keep_in_redis=settings.weights_kept_in_redis)
        return cls(run.redis, run.name, run.folder, settings, get_game(settings.game), store, device)

    @classmethod
    def of_worker(cls, run: str) -> EvalContext:
        from azjobs.inference.local import default_device

        ctx = context.current(run)
        return cls.create(Run(run, ctx.run_dir, ctx.redis), ctx.settings, default_device())

    def player(self, spec: str, sims: int | None = None) -> Player:
        sims = self.settings.eval_simulations if sims is None else sims
        return make_player(
            spec,
            self.game,
            weights=weights_from_store(self.store),
            sims=sims,
            search=search_config(self.settings),
            device=self.device,
            run_dir=self.run_dir,
            locate=self.locate,
            torchscript=False,  # a job's agent file is data (ONNX), never code
        )

    def locate(self, where: str) -> Path:
        """A job's net@RUN or agent:FILE: absolute, or on the storage root that holds this run (`azjobs eval`
        writes them so, since machines may mount the root anywhere)."""
        path = Path(where)
        return path if path.is_absolute() else self.run_dir.parent / path

    def version_info(self, player: Player) -> dict[str, float]:
        """What the run's own weights version of a network player says of its training ({} for other players)."""
        if not isinstance(player, NetPlayer) or player.source:
            return {}
        return {"version": player.version, **records.version_info(read_metadata(self.store.load(player.version)))}


def _job_id(fallback: str) -> str:
    job = get_current_job()
    return job.id if job is not None else fallback


# The jobs: importable top-level functions with small JSON arguments.


@context.counted("match")
def match(run: str, a: str, b: str, games: int, seed: int, purpose: str = "manual") -> dict[str, Any]:
    """RQ job: A against B for `games` games; the record as a dict."""
    record = run_match(EvalContext.of_worker(run), a, b, games, seed, purpose=purpose, id=_job_id(f"match-{seed}"))
    return _summary(record)


@context.counted("accuracy")
def accuracy(run: str, player: str, sims: int, seed: int) -> dict[str, Any]:
    """RQ job: a player's accuracy on the run's labelled positions."""
    record = run_accuracy(EvalContext.of_worker(run), player, sims, seed, id=_job_id(f"accuracy-{seed}"))
    return _summary(record)


@context.counted("gate")
def gate(run: str, candidate: int, seed: int) -> dict[str, Any]:
    """RQ job: the staged version `candidate` against the served one; promoted if it scores enough."""
    record = run_gate(EvalContext.of_worker(run), candidate, seed, id=_job_id(f"gate-{seed}"))
    return _summary(record) if record is not None else {"candidate": candidate, "skipped": "a newer version is served"}


def _summary(record: MatchRecord | records.AccuracyRecord) -> dict[str, Any]:
    return json.loads(records.to_json(record))


# What the jobs do, callable without RQ.


def _saved_before(ctx: EvalContext, cls: type[records.Record], id: str | None) -> records.Record | None:
    """The record an earlier run of this job saved (put into Redis if it is not yet there), or None.

    A retried job (same id) then plays nothing again and its result is counted once."""
    earlier = records.landed(ctx.run_dir, cls, id) if id else None
    if earlier is not None:
        records.save(ctx.redis, ctx.run, ctx.run_dir, earlier)
    return earlier


def run_match(
    ctx: EvalContext, a: str, b: str, games: int, seed: int, *, purpose: str = "manual", id: str | None = None
) -> MatchRecord:
    record = _saved_before(ctx, MatchRecord, id) or _play(ctx, a, b, games, seed, purpose=purpose, id=id)
    records.save(ctx.redis, ctx.run, ctx.run_dir, record)
    return record


def _play(
    ctx: EvalContext,
    a: str,
    b: str,
    games: int,
    seed: int,
    *,
    purpose: str,
    id: str | None,
    promoted: bool | None = None,
) -> MatchRecord:
    player_a, player_b = ctx.player(a), ctx.player(b)
    rng = np.random.default_rng([ctx.settings.seed, seed])
    result = play_match(ctx.game, player_a, player_b, games, rng, opening_moves=ctx.settings.eval_opening_moves)
    versions = {p.name: info for p in (player_a, player_b) if (info := ctx.version_info(p))}
    return dataclasses.replace(
        result,
        id=id or result.id,
        purpose=purpose,
        sims=ctx.settings.eval_simulations,
        versions=versions,
        promoted=promoted,
    )


def run_accuracy(
    ctx: EvalContext, player: str, sims: int, seed: int, *, id: str | None = None
) -> records.AccuracyRecord:
    earlier = _saved_before(ctx, records.AccuracyRecord, id)
    if earlier is not None:
        return earlier
    labels = load_positions(records.evals_dir(ctx.run_dir) / records.POSITIONS_FILE, ctx.game)
    chosen = ctx.player(player, sims)
    strength = measure(labels, chosen, np.random.default_rng([ctx.settings.seed, seed]))
    record = records.AccuracyRecord.of(
        strength.to_dict(), player=chosen.name, sims=sims, version=ctx.version_info(chosen), id=id
    )
    records.save(ctx.redis, ctx.run, ctx.run_dir, record)
    return record


def run_gate(ctx: EvalContext, candidate: int, seed: int, *, id: str | None = None) -> MatchRecord | None:
    """Play the staged `candidate` against the served version; promote it if it scores
    `gating_threshold` of the points. None (nothing played) if a version as new is served already."""
    earlier = _saved_before(ctx, MatchRecord, id)
    if earlier is not None:
        if earlier.promoted:
            ctx.store.promote(candidate)  # in case the earlier run stopped between saving and promoting
        return earlier
    served = ctx.store.latest_version() or 0
    if candidate <= served:
        return None
    record = _play(ctx, f"net:{candidate}", f"net:{served}", ctx.settings.eval_games, seed, purpose="gate", id=id)
    record = dataclasses.replace(record, promoted=record.a_score >= ctx.settings.gating_threshold)
    if record.promoted:
        ctx.store.promote(candidate)
    records.save(ctx.redis, ctx.run, ctx.run_dir, record)
    return record


# Enqueueing, for the trainer and `azjobs eval`.


def eval_queue(client: redis.Redis, run: str) -> Queue:
    return Queue(keys.eval_queue(run), connection=client, serializer=JSONSerializer)


def _enqueue(queue: Queue, function: str, args: tuple, description: str) -> Job:
    return queue.enqueue_call(
        function, args=args, timeout=JOB_TIMEOUT_S, result_ttl=RESULT_TTL_S, description=description, retry=Retry(max=1)
    )


def _seed(client: redis.Redis, run: str) -> int:
    """A seed no other job of the run had, even after a Redis restore (`azjobs.jobs.seeds`)."""
    return new_seed()


def enqueue_match(client: redis.Redis, run: str, a: str, b: str, games: int, purpose: str = "manual") -> Job:
    seed = _seed(client, run)
    args = (run, a, b, games, seed, purpose)
    return _enqueue(eval_queue(client, run), MATCH_JOB, args, f"{purpose} match {a} vs {b}")


def scheduled_opponents(
    settings: Settings, version: int, *, previous: int = 0, retired: Collection[str] = ()
) -> list[str]:
    """Whom version `version` plays when the trainer evaluates it: `previous` (the version evaluated before
    it; 0: none) where eval_opponents names it, and the baselines not `retired` (`azjobs.eval.retire`)."""
    found = []
    for item in opponent_list(settings.eval_opponents):
        if item == PREVIOUS:
            if 1 <= previous < version:
                found.append(f"net:{previous}")
        elif (name := str(PlayerSpec.parse(item))) not in retired:
            found.append(name)
    return found


def enqueue_version(
    client: redis.Redis,
    run: str,
    run_dir: Path,
    settings: Settings,
    version: int,
    *,
    previous: int = 0,
    retired: Collection[str] = (),
    ladder: bool = False,
) -> int:
    """Queue the evaluation of one version: its matches (`scheduled_opponents`), and its accuracy if the
    run has labelled positions; with `ladder` (the run's first evaluation) also the baselines against each
    other. Jobs queued."""
    queued = 0
    for opponent in scheduled_opponents(settings, version, previous=previous, retired=retired):
        enqueue_match(client, run, f"net:{version}", opponent, settings.eval_games, "schedule")
        queued += 1
    if ladder:
        queued += enqueue_ladder(client, run, settings)
    if (records.evals_dir(run_dir) / records.POSITIONS_FILE).exists():
        for sims in sorted({settings.eval_simulations, 0}, reverse=True):
            seed = _seed(client, run)
            _enqueue(
                eval_queue(client, run),
                ACCURACY_JOB,
                (run, f"net:{version}", sims, seed),
                f"accuracy net:{version} {sims} sims",
            )
            queued += 1
    return queued


def pending(client: redis.Redis, run: str) -> int:
    """The run's evaluation jobs queued or running, gates left out (one comes with every version)."""
    queue = eval_queue(client, run)
    ids = [*queue.job_ids, *queue.started_job_registry.get_job_ids()]
    jobs = Job.fetch_many(ids, connection=client, serializer=JSONSerializer)
    return sum(1 for job in jobs if job is not None and job.func_name != GATE_JOB)


def baselines(settings: Settings) -> list[str]:
    """The baselines of eval_opponents, by their canonical names."""
    return [str(PlayerSpec.parse(item)) for item in opponent_list(settings.eval_opponents) if item != PREVIOUS]


def enqueue_ladder(client: redis.Redis, run: str, settings: Settings) -> int:
    """Each baseline of eval_opponents against the next one, so the baselines are rated too."""
    found = baselines(settings)
    pairs = list(zip(found, found[1:]))
    for a, b in pairs:
        enqueue_match(client, run, b, a, settings.eval_games, "ladder")
    return len(pairs)


def wait_for(job: Job, poll_s: float = 0.5) -> dict[str, Any]:
    """Block until an evaluation job has finished; its result (AzjobsError if it failed)."""
    import time

    from azjobs.errors import AzjobsError

    while True:
        status = job.get_status(refresh=True)
        status = getattr(status, "value", status)  # rq's JobStatus enum, or a plain string
        if status == "finished":
            result = job.return_value()
            assert isinstance(result, dict)  # the evaluation jobs return their summary
            return result
        if status in ("failed", "stopped", "canceled"):
            raise AzjobsError(f"evaluation job {job.id} {status}: see the worker's log or rq-dashboard")
        time.sleep(poll_s)


def enqueue_gate(client: redis.Redis, run: str, candidate: int) -> None:
    seed = _seed(client, run)
    _enqueue(eval_queue(client, run), GATE_JOB, (run, candidate, seed), f"gate net:{candidate}")
