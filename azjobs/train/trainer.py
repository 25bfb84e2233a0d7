"""`azjobs train`: wait for data, train, publish, checkpoint; keep self-play queued.

The loop reads like the algorithm: top up the self-play queue, load new shards, wait
while there is too little data or the positions have been trained on often enough,
else take one step; every `publish_every_steps` steps publish a weights version, every
`checkpoint_every_steps` steps (and on exit) checkpoint. Publishing also queues the
evaluation of scheduled versions (and, with gating, stages the version for its gate
instead of serving it); new evaluation results are refitted into ratings and curves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import redis
import torch
import torch.nn.functional as F
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.connection import describe_outage, is_outage
from azjobs.eval import records
from azjobs.eval.positions import load_positions, resolve_positions
from azjobs.train.curves import record_run
from azjobs.errors import AzjobsError, StorageFullError
from azjobs.games import Game, get_game
from azjobs.jobs import evaluate
from azjobs.jobs.seeds import new_seed
from azjobs.net import device as devices
from azjobs.net.model import PolicyValueNet, build_model
from azjobs.net.weights import to_bytes
from azjobs.settings import Settings, for_process, learning_rate_at, overridden, process_settings
from azjobs.storage.checkpoints import load_latest_checkpoint, save_checkpoint
from azjobs.storage.lease import TrainerLease
from azjobs.storage.replay import ReplayBuffer, powerlaw_window, rebuild_index, unregister_shard
from azjobs.storage.restore import restore_if_lost
from azjobs.storage.sweep import sweep_temps
from azjobs.storage.weights import WeightStore, write_atomic
from azjobs.train.precision import MixedPrecision, adamw

SELFPLAY_JOB = "azjobs.jobs.selfplay.selfplay"
JOB_TIMEOUT_S = 4 * 3600  # a job that hangs longer than this (e.g. no server for hours) fails in RQ
RESULT_TTL_S = 24 * 3600  # job summaries stay visible in rq-dashboard for a day
REFRESH_EVERY_S = 2.0
FULL_DISK_RETRY_S = 5.0  # how often a write that found the storage root full is tried again


@dataclass
class TrainerState:
    """What the loop carries between steps; `step`, `version` and `samples_trained` are checkpointed."""

    step: int = 0
    version: int = 0
    samples_trained: int = 0
    train_seconds: float = 0.0  # wall time the trainer has run, over all its restarts
    losses: dict[str, float] = field(default_factory=dict)
    waiting: str = ""
    selfplay_paused: str = ""  # why self-play is not being queued (min_train_per_position)


LOSS_NAMES = ("loss", "policy_loss", "value_loss", "policy_kl")  # the order of train_step's losses


def pick_device(requested: str | None = None) -> torch.device:
    return devices.resolve(requested)


def train_step(
    model: PolicyValueNet,
    optimizer: torch.optim.Optimizer,
    batch: tuple[np.ndarray, ...],
    device: torch.device,
    precision: MixedPrecision | None = None,
) -> torch.Tensor:
    """One minibatch (planes, policy, value[, policy_weight]): policy cross-entropy against the search
    policy, over the positions whose policy weight is 1 (all without weights), plus value MSE over all.

    Returns the losses `[4]` (LOSS_NAMES) on the device, detached: reading them would wait for the GPU,
    so the caller sums them there and reads them only when it logs."""
    precision = precision or MixedPrecision(device)
    planes, policy, value, *rest = (torch.from_numpy(a).to(device, non_blocking=True) for a in batch)
    weight = rest[0] if rest else torch.ones_like(value)  # [B]
    model.train()
    with precision.autocast():
        logits, predicted = model(planes)
    logits, predicted = logits.float(), predicted.float()
    targets = weight.sum().clamp_min(1.0)  # a batch without policy targets trains the value alone
    policy_loss = -(weight * (policy * F.log_softmax(logits, dim=1)).sum(dim=1)).sum() / targets
    value_loss = F.mse_loss(predicted, value)
    loss = policy_loss + value_loss
    precision.step(loss, optimizer)
    # The policy target's own entropy, so a perfect fit shows as policy_kl = 0.
    entropy = -(weight * (policy * torch.log(policy.clamp_min(1e-12))).sum(dim=1)).sum() / targets
    return torch.stack([loss, policy_loss, value_loss, policy_loss - entropy]).detach()


def weights_bytes(model: PolicyValueNet, game: Game, settings: Settings, state: TrainerState) -> bytes:
    meta = {"version": str(state.version), "step": str(state.step), "samples_trained": str(state.samples_trained),
            "train_seconds": f"{state.train_seconds:.1f}"}
    return to_bytes(model, {**meta, "game": game.name})


class Trainer:
    """The trainer daemon of one run."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        run: str,
        run_dir: Path,
        *,
        device: str | None = None,
        log: Callable[[str], None] = print,
        own: Mapping[str, Any] | None = None,
    ) -> None:
        self.client, self.run_name, self.run_dir, self.log = client, run, Path(run_dir), log
        # This process's own cadence (`own`: process settings of `azjobs train`); the run's settings
        # as stored go into checkpoints and back into a Redis that lost them.
        self.run_settings, self.settings = settings, for_process(settings, "train", own or {})
        if self.settings != settings:
            log(f"trainer: this process's own {overridden(self.settings, settings)}")
        self.game = get_game(settings.game)
        self.device = pick_device(device)
        torch.manual_seed(settings.seed)
        self.model = build_model(self.game, settings).to(self.device)
        self.precision = MixedPrecision(self.device)
        self.optimizer = adamw(self.model.parameters(), self.device, settings.learning_rate,
                                             settings.weight_decay)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every step has the same batch shape
        self._loss_sum: torch.Tensor | None = None  # [4] on the device, since the losses were last read
        self._loss_steps = 0
        self.store = WeightStore(client, run, self.run_dir, keep_in_redis=settings.weights_kept_in_redis)
        self.queue = Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)
        self.buffer = ReplayBuffer(
            self.run_dir, self.game, capacity=settings.replay_buffer_size, rng=np.random.default_rng(settings.seed), log=log,
            on_set_aside=lambda name: unregister_shard(client, run, name),  # its games leave the counters
        )
        self.state = TrainerState()
        self.owed: set[str] = set()  # writes a full disk held back: "publish", "checkpoint"
        self.pid = heartbeat.process_id()
        self.writer = _summary_writer(self.run_dir / "logs")
        self._last_beat = 0.0
        self._steps_at_beat = 0
        self.positions_total = 0  # positions the run has made (Redis counter), as of the last refresh
        self._evals_seen: dict[type, int] = {}  # evaluation records already turned into ratings and curves
        self._clock = time.monotonic()

    def resume(self) -> None:
        """Restore the newest checkpoint (or start fresh) and make sure its weights are published."""
        info = load_latest_checkpoint(self.run_dir, self.model, self.optimizer, log=self.log)
        if info is not None:
            self.state.step, self.state.version = info.step, info.version
            self.state.samples_trained = int(info.extra.get("samples_trained", 0))
            self.state.train_seconds = float(info.extra.get("train_seconds", 0.0))
            self.log(f"trainer: resumed from {info.path.name} (step {info.step}, version {info.version})")
        self.copy_positions()
        # The newest of Redis, the storage root and the staged candidates: a Redis restored from an older
        # snapshot must not make us publish again (and overwrite) versions that exist. Numbers only go up.
        sweep_temps(self.run_dir, self.log)
        published = max([self.store.reconcile() or 0, *self.store.staged_versions()])
        if published < max(self.state.version, 1):
            # Fresh run, or weights newer than any checkpoint were lost: publish what we have.
            self.state.version = max(self.state.version, published + 1, 1)
            self.publish()
        else:
            self.state.version = published
        restored = rebuild_index(self.client, self.run_name, self.run_dir)
        if restored:
            self.log(f"trainer: restored {restored} replay shards into the Redis index from the storage root")
        restored = records.rebuild(self.client, self.run_name, self.run_dir)
        if restored:
            self.log(f"trainer: restored {restored} evaluation records into Redis from the storage root")
        # Ratings from what exists; only later records become new points on the curves.
        self.record_evals(curves=False)

    def copy_positions(self) -> None:
        """Copy the eval_positions set (a bundled set's name or a file; checked first) into the run,
        where every worker finds it."""
        setting = self.settings.eval_positions
        target = records.evals_dir(self.run_dir) / records.POSITIONS_FILE
        if not setting or target.exists():
            return
        source = resolve_positions(setting)
        load_positions(source, self.game)  # AzjobsError naming the line if it is not a labelled set
        write_atomic(target, source.read_bytes())
        self.log(f"trainer: labelled positions {setting} copied to {target}")

    def settle(self) -> None:
        """Write the owed weights version and checkpoint; on a full disk they stay owed (StorageFullError)."""
        if "publish" in self.owed:
            self.publish()
            self.owed.discard("publish")
        if "checkpoint" in self.owed:
            self.checkpoint()
            self.owed.discard("checkpoint")

    def publish(self) -> None:
        """Serve the new version (or, with gating, stage it for its gate) and queue its evaluation."""
        version, s = self.state.version, self.settings
        data = weights_bytes(self.model, self.game, s, self.state)
        if s.gating and version > 1:
            self.store.stage(version, data)
            evaluate.enqueue_gate(self.client, self.run_name, version)
            self.log(f"trainer: staged weights version {version} at step {self.state.step} for its gate")
        else:
            self.store.publish(version, data)
            self.log(f"trainer: published weights version {version} at step {self.state.step}")
        if s.eval_every_versions and (version - 1) % s.eval_every_versions == 0:
            queued = evaluate.enqueue_version(self.client, self.run_name, self.run_dir, s, version)
            self.log(f"trainer: queued {queued} evaluation jobs for version {version}")

    def checkpoint(self) -> None:
        save_checkpoint(
            self.run_dir,
            model=self.model,
            optimizer=self.optimizer,
            step=self.state.step,
            version=self.state.version,
            settings=self.run_settings,
            extra={"samples_trained": self.state.samples_trained, "train_seconds": round(self.state.train_seconds, 1)},
        )

    def top_up_queue(self) -> int:
        """Enqueue self-play jobs until `selfplay_queue_depth` are waiting; returns how many were added.

        None while training lags behind `min_train_per_position` (the games would go unused)."""
        self.state.selfplay_paused = self.why_pause_selfplay()
        if self.state.selfplay_paused:
            return 0
        missing = self.settings.selfplay_queue_depth - self.queue.count
        for _ in range(max(0, missing)):
            number = int(self.client.hincrby(keys.stats(self.run_name), "jobs_enqueued", 1))
            self.queue.enqueue_call(
                SELFPLAY_JOB,
                args=(self.run_name, new_seed()),  # random, not the counter: a restored Redis resets that
                timeout=JOB_TIMEOUT_S,
                result_ttl=RESULT_TTL_S,
                description=f"selfplay {self.run_name} #{number}",
                retry=Retry(max=1),
            )
        return max(0, missing)

    def positions_available(self) -> int:
        raw = self.client.hget(keys.stats(self.run_name), "positions")
        return int(raw or 0)

    def why_pause_selfplay(self) -> str:
        """Empty unless training lags behind `min_train_per_position`; then the reason."""
        s = self.settings
        if not s.min_train_per_position or self.buffer.size < s.min_replay_positions:
            return ""
        # A batch of slack, so that a paused self-play always leaves the trainer room for a step.
        wanted = s.min_train_per_position * max(self.positions_available(), self.buffer.total_added)
        if self.state.samples_trained + s.batch_size >= wanted:
            return ""
        return f"self-play paused: training is below {s.min_train_per_position:g} samples per position"

    def window(self) -> int:
        """How many of the newest positions a batch is drawn from."""
        s = self.settings
        if not s.replay_window_min_rows:
            return s.replay_buffer_size
        total = max(self.positions_total, self.buffer.total_added)
        grown = powerlaw_window(total, s.replay_window_min_rows, s.replay_window_exponent, s.replay_window_expand)
        return min(s.replay_buffer_size, grown)

    def why_wait(self) -> str:
        """Empty when a step may be taken; else the reason to wait for more self-play."""
        s = self.settings
        if self.buffer.size < s.min_replay_positions:
            return f"waiting for {s.min_replay_positions} positions (have {self.buffer.size})"
        # The count read at the last refresh, not Redis on every step: it only grows, so a stale one
        # errs on the side of waiting, and a wait refreshes on the next pass.
        budget = s.max_train_per_position * max(self.positions_total, self.buffer.total_added)
        if self.state.samples_trained + s.batch_size > budget:
            return f"trained each position {s.max_train_per_position:g} times on average; waiting for new games"
        return ""

    def step(self) -> None:
        rate = learning_rate_at(self.settings, self.state.step)
        for group in self.optimizer.param_groups:  # also right after a resume: the schedule follows the step
            group["lr"] = rate
        batch = self.buffer.sample(self.settings.batch_size, window=self.window())
        losses = train_step(self.model, self.optimizer, batch, self.device, self.precision)
        self._loss_sum = losses if self._loss_sum is None else self._loss_sum + losses
        self._loss_steps += 1
        self.state.step += 1
        self.state.samples_trained += self.settings.batch_size
        s = self.settings
        if self.state.step % s.publish_every_steps == 0:
            self.state.version += 1
            self.owed.add("publish")
        if self.state.step % s.checkpoint_every_steps == 0:
            self.owed.add("checkpoint")
        self.settle()
        if self.state.step % 10 == 0:
            self.record_curves()

    def read_losses(self) -> None:
        """The mean losses since the last read into `state.losses`: one wait for the GPU per read."""
        if self._loss_sum is None:
            return
        means = (self._loss_sum / self._loss_steps).tolist()
        self.state.losses = dict(zip(LOSS_NAMES, means))
        self._loss_sum, self._loss_steps = None, 0

    def record_curves(self) -> None:
        if self.writer is None:
            return
        self.read_losses()
        for name, value in self.state.losses.items():
            self.writer.add_scalar(f"loss/{name}", value, self.state.step)
        self.writer.add_scalar("train/learning_rate", self.optimizer.param_groups[0]["lr"], self.state.step)
        record_run(self.writer, self.client, self.run_name, self.state.step)
        self.writer.add_scalar("train/version", self.state.version, self.state.step)
        self.writer.add_scalar("train/replay_size", self.buffer.size, self.state.step)
        self.writer.add_scalar("train/replay_window", min(self.window(), self.buffer.size), self.state.step)

    def refresh(self) -> None:
        """Between steps, every few seconds: queue self-play, load new shards, take in evaluations."""
        self.positions_total = self.positions_available()
        self.buffer.refresh()
        self.top_up_queue()  # after the refresh: whether to pause depends on the data held
        self.record_evals()

    def record_evals(self, curves: bool = True) -> None:
        """Refit the ratings when matches came in; new results become points on the TensorBoard curves."""
        kinds = (records.MatchRecord, records.AccuracyRecord)
        counts = {cls: records.count(self.client, self.run_name, cls) for cls in kinds}
        if counts == self._evals_seen:
            return
        matches = records.read(self.client, self.run_name, records.MatchRecord)
        scored = records.read(self.client, self.run_name, records.AccuracyRecord)
        new_matches = matches[self._evals_seen.get(records.MatchRecord, 0):]
        new_scores = scored[self._evals_seen.get(records.AccuracyRecord, 0):]
        self._evals_seen = {records.MatchRecord: len(matches), records.AccuracyRecord: len(scored)}
        fitted = records.refit(self.client, self.run_name, self.run_dir, matches) if new_matches else {}
        if not curves or self.writer is None:
            return
        for record in new_scores:
            if "step" in record.version:
                suffix = "" if record.sims else "_net"  # with search, and the network alone
                step = int(record.version["step"])
                self.writer.add_scalar(f"eval/weak_accuracy{suffix}", record.weak_accuracy, step)
                self.writer.add_scalar(f"eval/strong_accuracy{suffix}", record.strong_accuracy, step)
        rated = {int(info["step"]): name for m in new_matches for name, info in m.versions.items()
                 if name in fitted and "step" in info}
        for step, name in sorted(rated.items()):
            self.writer.add_scalar("eval/elo", fitted[name].elo, step)

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_beat < heartbeat.INTERVAL_S:
            return
        elapsed = now - self._last_beat if self._last_beat else 0.0
        self.read_losses()
        steps_per_s = (self.state.step - self._steps_at_beat) / elapsed if elapsed else 0.0
        self._last_beat, self._steps_at_beat = now, self.state.step
        fields = {
            "step": self.state.step,
            "version": self.state.version,
            "samples_trained": self.state.samples_trained,
            "replay_size": self.buffer.size,
            "replay_window": min(self.window(), self.buffer.size),
            "train_seconds": round(self.state.train_seconds, 1),
            "steps_per_s": round(steps_per_s, 2),
            "waiting": self.state.waiting,
            "selfplay_paused": self.state.selfplay_paused,
            "device": str(self.device),
            "precision": self.precision.name,
            **{k: round(v, 4) for k, v in self.state.losses.items()},
            **{name: getattr(self.settings, name) for name in process_settings("train")},  # for `azjobs status`
        }
        self.client.hset(keys.trainer(self.run_name), mapping={k: str(v) for k, v in fields.items()})
        heartbeat.beat(self.client, self.run_name, "trainer", self.pid, fields)

    def tick(self) -> None:
        """Count the wall time the trainer runs (it goes into weights metadata and checkpoints)."""
        now = time.monotonic()
        self.state.train_seconds += now - self._clock
        self._clock = now

    def close(self, write: bool = True) -> None:
        """Checkpoint on exit, with any weights version still owed; a full disk ends in StorageFullError."""
        self.tick()
        try:
            if self.state.step and write:
                self.owed.add("checkpoint")
            self.settle()
        finally:
            if self.writer is not None:
                self.writer.close()


def _summary_writer(logdir: Path):  # type: ignore[no-untyped-def]
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; a stripped install just loses the curves
        return None
    logdir.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(str(logdir))


def run(
    settings: Settings,
    client: redis.Redis,
    run: str,
    run_dir: Path,
    *,
    device: str | None = None,
    stop: threading.Event | None = None,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
    own: Mapping[str, Any] | None = None,
) -> TrainerState:
    """The trainer loop, until `stop` is set or `max_steps` steps have been taken in all; `own`: this
    process's own values of its process settings (publish_every_steps, ...), the run's kept as stored.

    Only one trainer runs per run (TrainerBusyError naming the other); one that loses the run's lease
    to another stops without writing more and ends in AzjobsError."""
    stop = stop or threading.Event()
    lease = TrainerLease.acquire(client, run, Path(run_dir), log=log)
    try:
        lease.keep(stop)
        state = _run(settings, client, run, run_dir, lease, device=device, stop=stop, max_steps=max_steps, log=log,
                     own=own)
    finally:
        lease.release()
    if lease.lost:
        raise AzjobsError(lease.lost)
    return state


def _run(settings: Settings, client: redis.Redis, run: str, run_dir: Path, lease: TrainerLease, *,
         device: str | None, stop: threading.Event, max_steps: int | None, log: Callable[[str], None],
         own: Mapping[str, Any] | None) -> TrainerState:
    trainer = Trainer(settings, client, run, run_dir, device=device, log=log, own=own)
    trainer.resume()
    last_refresh = 0.0
    lost = False
    try:
        while not stop.is_set() and (max_steps is None or trainer.state.step < max_steps):
            try:
                last_refresh = _one_pass(trainer, stop, last_refresh)
                if lost:  # a pass may only read: Redis is back once it takes a write again
                    trainer.report(force=True)
            except StorageFullError as e:
                # Nothing is lost: the model stays in memory and the write is retried; no training meanwhile.
                if trainer.state.waiting != str(e):
                    log(f"trainer: {e}")
                trainer.state.waiting = str(e)
                with contextlib.suppress(redis.RedisError):
                    trainer.report()
                stop.wait(FULL_DISK_RETRY_S)
                continue
            except redis.RedisError as e:
                if not is_outage(e):
                    raise
                # Lost, silent, out of memory or read-only: the model stays in memory and Redis is
                # waited out (checkpoints and weights are on disk).
                if not lost:
                    log(f"trainer: {describe_outage(e)}; retrying every second")
                lost = True
                stop.wait(1.0)
                last_refresh = 0.0
                continue
            if lost:
                log("trainer: Redis is back; training again")
                lost = False
    finally:
        with contextlib.suppress(redis.RedisError):  # the last figures, if Redis is still there
            trainer.report(force=True)
        try:
            if lease.lost:
                trainer.owed.clear()  # the run is another trainer's now: write nothing more
            trainer.close(write=not lease.lost)
        finally:
            log(f"trainer: stopped at step {trainer.state.step}, version {trainer.state.version}")
    return trainer.state


def _one_pass(trainer: Trainer, stop: threading.Event, last_refresh: float) -> float:
    """Settle owed writes, refresh when due, then wait for data or take one step; the new refresh time."""
    if trainer.owed:
        trainer.settle()  # raises again while the disk is still full
        trainer.log("trainer: the storage root has room again; training goes on")
    trainer.tick()
    if time.monotonic() - last_refresh > REFRESH_EVERY_S:
        # A Redis that restarted empty gets the run back from the storage root first.
        restore_if_lost(trainer.client, trainer.run_name, trainer.run_dir, trainer.run_settings, trainer.store,
                        trainer.log)
        trainer.refresh()
        last_refresh = time.monotonic()
    trainer.state.waiting = trainer.why_wait()
    if trainer.state.waiting:
        trainer.report()
        stop.wait(0.5)
        return 0.0  # refresh again on the next pass: new games may have come
    trainer.step()
    trainer.report()
    return last_refresh
