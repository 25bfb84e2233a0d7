"""`azjobs train`: wait for data, train, publish, checkpoint; keep self-play queued.

The loop reads like the algorithm: top up the self-play queue, load new shards, wait
while there is too little data or the positions have been trained on often enough,
else take one step; every `publish_every_steps` steps publish a weights version, every
`checkpoint_every_steps` steps (and on exit) checkpoint. Publishing also queues the
evaluation of scheduled versions (and, with gating, stages the version for its gate
instead of serving it); new evaluation results are refitted into ratings and curves.

Here: the loop, the run's lease, resuming, the writes a full disk holds back (`owed`), and
Redis outages waited out. Its parts: `learner` (the network, its optimizer and precision,
one step), `schedule` (self-play jobs, the train/play ratio, new versions and their
evaluations), `progress` (curves, ratings, heartbeat).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from azjobs import keys
from azjobs.cluster import heartbeat
from azjobs.cluster.connection import Outage, is_outage
from azjobs.errors import AzjobsError, StorageFullError
from azjobs.eval import records
from azjobs.games import get_game
from azjobs.net import device as devices
from azjobs.net.weights import to_bytes
from azjobs.run import Run
from azjobs.settings import Settings, for_process, overridden
from azjobs.settings.syntax import network_size_at
from azjobs.storage.checkpoints import load_latest_checkpoint, save_checkpoint
from azjobs.storage.lease import TrainerLease
from azjobs.storage.replay import ReplayBuffer, rebuild_index, unregister_shard
from azjobs.storage.sweep import sweep_temps
from azjobs.storage.targets import TargetSettings
from azjobs.storage.weights import WeightStore
from azjobs.train import progress, rates, schedule
from azjobs.train.learner import Learner

REFRESH_EVERY_S = 2.0
FULL_DISK_RETRY_S = 5.0  # how often a write that found the storage root full is tried again
CURVES_EVERY_STEPS = 10


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


class Trainer:
    """The trainer daemon of one run: its parts, its state, and the loop's verbs."""

    def __init__(
        self,
        settings: Settings,
        run: Run,
        *,
        device: str | None = None,
        log: Callable[[str], None] = print,
        own: Mapping[str, Any] | None = None,
    ) -> None:
        assert run.folder is not None, "the trainer works on the run's folder"
        self.run, self.log = run, log
        self.client, self.run_name, self.run_dir = run.redis, run.name, Path(run.folder)
        client = run.redis
        # This process's own cadence (`own`: process settings of `azjobs train`); the run's settings
        # as stored go into checkpoints and back into a Redis that lost them.
        self.run_settings, self.settings = settings, for_process(settings, "train", own or {})
        if self.settings != settings:
            log(f"trainer: this process's own {overridden(self.settings, settings)}")
        self.game = get_game(settings.game)
        self.learner = Learner(self.game, settings, devices.resolve(device))
        self.store = WeightStore(client, run.name, self.run_dir, keep_in_redis=settings.weights_kept_in_redis)
        self.queue = schedule.selfplay_queue(client, run.name)
        self.buffer = ReplayBuffer(
            self.run_dir,
            self.game,
            capacity=settings.replay_buffer_size,
            rng=np.random.default_rng(settings.seed),
            log=log,
            on_set_aside=lambda name: unregister_shard(client, run.name, name),  # its games leave the counters
            targets=TargetSettings.from_settings(settings),
        )
        self.state = TrainerState()
        self.owed: set[str] = set()  # writes a full disk held back: "publish", "checkpoint"
        self.pid = heartbeat.process_id()
        self.writer = progress.summary_writer(self.run_dir / "logs")
        self.evals_seen = progress.EvalsSeen()  # evaluation records already turned into ratings and curves
        self.positions_total = 0  # positions the run has made (Redis counter), as of the last refresh
        self._last_beat, self._steps_at_beat = 0.0, 0
        self._clock = time.monotonic()

    # Starting: the newest of checkpoint, Redis, disk and candidates.

    def resume(self) -> None:
        """Restore the newest checkpoint (or start fresh) and make sure its weights are published."""
        learner = self.learner
        info = load_latest_checkpoint(
            self.run_dir,
            learner.model,
            learner.optimizer,
            log=self.log,
            averaged=learner.averaged_model,
            fit=learner.fit,
        )
        if info is not None:
            self.state.step, self.state.version = info.step, info.version
            self.state.samples_trained = int(info.extra.get("samples_trained", 0))
            self.state.train_seconds = float(info.extra.get("train_seconds", 0.0))
            self.log(f"trainer: resumed from {info.path.name} (step {info.step}, version {info.version})")
        schedule.copy_positions(self.settings, self.game, self.run_dir, self.log)
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

    def grow_if_due(self) -> None:
        """Switch to the bigger network of net_grow_schedule once the run has made its positions."""
        made, was = self.counts().made, self.learner.size
        if self.learner.grow_to(network_size_at(self.settings, made)):
            new = "x".join(map(str, self.learner.size))
            self.log(f"trainer: the network grows from {was[0]}x{was[1]} to {new} at {made} positions made")

    # Between steps: new data, self-play, evaluations.

    def refresh(self) -> None:
        """Between steps, every few seconds: queue self-play, load new shards, take in evaluations."""
        self.positions_total = schedule.positions_made(self.client, self.run_name)
        self.buffer.refresh()
        self.top_up_queue()  # after the refresh: whether to pause depends on the data held
        self.record_evals()

    def counts(self) -> schedule.Counts:
        made = max(self.positions_total, self.buffer.total_added)
        return schedule.Counts(held=self.buffer.size, made=made, trained=self.state.samples_trained)

    def top_up_queue(self) -> int:
        """Enqueue self-play jobs until `selfplay_queue_depth` are waiting; returns how many were added.

        None while training lags behind `min_train_per_position` (the games would go unused)."""
        self.state.selfplay_paused = self.why_pause_selfplay()
        if self.state.selfplay_paused:
            return 0
        # Progressive simulations: each job gets the count of the run's progress when it is queued.
        simulations = rates.simulations(self.settings, self.counts().made) if self.settings.simulations_start else None
        queue, depth = self.queue, self.settings.selfplay_queue_depth
        added = schedule.top_up_queue(self.client, self.run_name, queue, depth, simulations=simulations)
        if added and simulations is not None and self.writer is not None:
            self.writer.add_scalar("train/simulations", simulations, self.state.step)
        return added

    def why_pause_selfplay(self) -> str:
        return schedule.why_pause_selfplay(self.settings, self.counts())

    def why_wait(self) -> str:
        # The count read at the last refresh, not Redis on every step: it only grows, so a stale one
        # errs on the side of waiting, and a wait refreshes on the next pass.
        return schedule.why_wait(self.settings, self.counts())

    def window(self) -> int:
        return schedule.replay_window(self.settings, self.counts().made)

    def record_evals(self, curves: bool = True) -> None:
        """Refit the ratings when matches came in; new results become points on the TensorBoard curves."""
        writer = self.writer if curves else None
        progress.record_evals(self.client, self.run_name, self.run_dir, self.evals_seen, writer)

    # A step, and the writes it owes.

    def step(self) -> None:
        s = self.settings
        if s.net_grow_schedule:
            self.grow_if_due()
        batch = self.buffer.sample(s.batch_size, window=self.window())
        self.learner.step(batch, self.state.step)
        self.state.step += 1
        self.state.samples_trained += s.batch_size
        if self.state.step % s.publish_every_steps == 0:
            self.state.version += 1
            self.owed.add("publish")
        if self.state.step % s.checkpoint_every_steps == 0:
            self.owed.add("checkpoint")
        self.settle()
        if self.state.step % CURVES_EVERY_STEPS == 0 and self.writer is not None:
            self.read_losses()
            progress.record_curves(self.writer, self.client, self.run_name, self.snapshot())

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
        state = self.state
        # The run's self-play so far (its counters now: one read per version), for curves against compute.
        games, positions = self.client.hmget(keys.stats(self.run_name), "games", "positions")
        meta = {
            "version": str(state.version),
            "step": str(state.step),
            "samples_trained": str(state.samples_trained),
            "train_seconds": f"{state.train_seconds:.1f}",
            "games_made": str(int(games or 0)),
            "positions_made": str(int(positions or 0)),
            "game": self.game.name,
        }
        data = to_bytes(self.learner.published, meta)
        schedule.publish(self.store, self.run_dir, self.settings, state.version, state.step, data, self.log)

    def checkpoint(self) -> None:
        state = self.state
        save_checkpoint(
            self.run_dir,
            model=self.learner.model,
            optimizer=self.learner.optimizer,
            step=state.step,
            version=state.version,
            settings=self.run_settings,
            extra={"samples_trained": state.samples_trained, "train_seconds": round(state.train_seconds, 1)},
            averaged=self.learner.averaged_model,
        )

    # What the trainer tells: losses, curves, heartbeat.

    def read_losses(self) -> None:
        """The mean losses since the last read into `state.losses`: one wait for the GPU per read."""
        losses = self.learner.read_losses()
        if losses is not None:
            self.state.losses = losses

    def snapshot(self) -> progress.Snapshot:
        state = self.state
        return progress.Snapshot(
            step=state.step,
            version=state.version,
            samples_trained=state.samples_trained,
            replay_size=self.buffer.size,
            replay_window=min(self.window(), self.buffer.size),
            train_seconds=state.train_seconds,
            learning_rate=self.learner.learning_rate,
            losses=state.losses,
            waiting=state.waiting,
            selfplay_paused=state.selfplay_paused,
        )

    def report(self, force: bool = False) -> None:
        """The heartbeat, every `heartbeat.INTERVAL_S` (or now, with `force`)."""
        now = time.monotonic()
        if not force and now - self._last_beat < heartbeat.INTERVAL_S:
            return
        elapsed = now - self._last_beat if self._last_beat else 0.0
        self.read_losses()
        steps_per_s = (self.state.step - self._steps_at_beat) / elapsed if elapsed else 0.0
        self._last_beat, self._steps_at_beat = now, self.state.step
        progress.send_heartbeat(
            self.client,
            self.run_name,
            self.pid,
            self.snapshot(),
            steps_per_s=steps_per_s,
            device=self.learner.device,
            precision=self.learner.precision.name,
            settings=self.settings,
        )

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


def run(
    settings: Settings,
    run: Run,
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
    assert run.folder is not None, "the trainer works on the run's folder"
    lease = TrainerLease.acquire(run.redis, run.name, Path(run.folder), log=log)
    try:
        lease.keep(stop)
        state = _run(settings, run, lease, device=device, stop=stop, max_steps=max_steps, log=log, own=own)
    finally:
        lease.release()
    if lease.lost:
        raise AzjobsError(lease.lost)
    return state


@dataclass
class _Passes:
    """What the loop keeps between its passes."""

    outage: Outage  # Redis was out; it is back once a pass writes to it again
    last_refresh: float = 0.0  # time.monotonic() of the last refresh; 0.0: refresh on the next pass


def _run(
    settings: Settings,
    run: Run,
    lease: TrainerLease,
    *,
    device: str | None,
    stop: threading.Event,
    max_steps: int | None,
    log: Callable[[str], None],
    own: Mapping[str, Any] | None,
) -> TrainerState:
    trainer = Trainer(settings, run, device=device, log=log, own=own)
    trainer.resume()
    passes = _Passes(
        Outage(log, "trainer: Redis is back; training again", lost="trainer: {cause}; retrying every second")
    )
    try:
        while not stop.is_set() and (max_steps is None or trainer.state.step < max_steps):
            _ride_out_faults(trainer, stop, passes)
    finally:
        _finish(trainer, lease)
    return trainer.state


def _one_pass(trainer: Trainer, stop: threading.Event, last_refresh: float) -> float:
    """Settle owed writes, refresh when due, then wait for data or take one step; the new refresh time."""
    if trainer.owed:
        trainer.settle()  # raises again while the disk is still full
        trainer.log("trainer: the storage root has room again; training goes on")
    trainer.tick()
    if time.monotonic() - last_refresh > REFRESH_EVERY_S:
        # A Redis that restarted empty gets the run back from the storage root first.
        trainer.run.restore(trainer.run_settings, trainer.store, trainer.log)
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


def _ride_out_faults(trainer: Trainer, stop: threading.Event, passes: _Passes) -> None:
    """One pass; a full storage root or a Redis outage holds training until it is over. Nothing is lost
    meanwhile: the model stays in memory, checkpoints and weights are on disk, owed writes are retried."""
    try:
        passes.last_refresh = _one_pass(trainer, stop, passes.last_refresh)
        if passes.outage.on:  # a pass may only read: Redis is back once it takes a write again
            trainer.report(force=True)
    except StorageFullError as e:
        if trainer.state.waiting != str(e):
            trainer.log(f"trainer: {e}")
        trainer.state.waiting = str(e)
        with contextlib.suppress(redis.RedisError):
            trainer.report()
        stop.wait(FULL_DISK_RETRY_S)
        return
    except redis.RedisError as e:
        if not is_outage(e):
            raise
        # Lost, silent, out of memory or read-only: waited out, saying so once.
        passes.outage.lost("trainer", e)
        stop.wait(1.0)
        passes.last_refresh = 0.0
        return
    passes.outage.passed("trainer")


def _finish(trainer: Trainer, lease: TrainerLease) -> None:
    """The last figures, if Redis is still there, and the checkpoint on exit unless the run is another's."""
    with contextlib.suppress(redis.RedisError):
        trainer.report(force=True)
    try:
        if lease.lost:
            trainer.owed.clear()  # the run is another trainer's now: write nothing more
        trainer.close(write=not lease.lost)
    finally:
        trainer.log(f"trainer: stopped at step {trainer.state.step}, version {trainer.state.version}")
