"""The trainer daemon against a real Redis: schedule, waiting for data, budget, resuming, and learning."""

from __future__ import annotations

import json
import math
import threading
import zlib
from pathlib import Path

import numpy as np
import prepared_shards
import pytest
import redis
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from prepared_shards import GAME, uniform
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from azjobs import keys
from azjobs.cli import main
from azjobs.inference.local import LocalEvaluator
from azjobs.jobs.configs import selfplay_config
from azjobs.net import read_metadata
from azjobs.net.model import build_model
from azjobs.run import Run, read_file
from azjobs.search.selfplay import play_games
from azjobs.settings import Settings, SettingsError
from azjobs.storage.checkpoints import checkpoint_paths, load_latest_checkpoint
from azjobs.storage.replay import ReplayBuffer, list_shards, shard_names
from azjobs.storage.shards import ShardInfo, write_shard
from azjobs.storage.weights import WeightStore, versions_in
from azjobs.train import learner, trainer
from azjobs.train.schedule import SELFPLAY_JOB
from azjobs.train.trainer import Trainer, TrainerState

SETTINGS = Settings(
    game="tictactoe",
    net_blocks=1,
    net_channels=8,
    num_simulations=8,
    temperature_moves=9,
    batch_size=16,
    learning_rate=1e-2,
    min_replay_positions=100,
    replay_buffer_size=5_000,
    publish_every_steps=3,
    checkpoint_every_steps=5,
    selfplay_queue_depth=3,
    max_train_per_position=100.0,
    weights_kept_in_redis=2,
)


class StopWhenWaiting(threading.Event):
    """A stop event that the trainer's first wait for data sets: run() returns instead of polling."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        self.set()
        return True


def add_shard(client: redis.Redis, run_dir: Path, seed: int, games: int = 48) -> ShardInfo:
    return prepared_shards.add_shard(client, run_dir, SETTINGS, seed, games)


def train(
    client: redis.Redis, run_dir: Path, settings: Settings = SETTINGS, **kwargs: object
) -> tuple[TrainerState, list[str]]:
    logs: list[str] = []
    state = trainer.run(settings, Run(run_dir.name, run_dir, client), device="cpu", log=logs.append, **kwargs)
    return state, logs


def published_steps(client: redis.Redis, run_dir: Path) -> dict[int, int]:
    """Weights version -> the training step it was published at (from its metadata)."""
    store = WeightStore(client, run_dir.name, run_dir)
    return {v: int(read_metadata(store.load(v))["step"]) for v in versions_in(run_dir / "weights")}


def checkpoint_steps(run_dir: Path) -> list[int]:
    return [int(p.stem.split("-")[1]) for p in checkpoint_paths(run_dir)]


def queued_jobs(client: redis.Redis, run: str) -> list[list]:
    queue = Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)
    return [json.loads(zlib.decompress(client.hget(Job.key_for(i), "data"))) for i in queue.job_ids]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "tr"


def test_publishes_checkpoints_and_queues_on_schedule(redis_client: redis.Redis, run_dir: Path) -> None:
    add_shard(redis_client, run_dir, seed=0)
    state, logs = train(redis_client, run_dir, max_steps=10)

    assert (state.step, state.version, state.samples_trained) == (10, 4, 10 * SETTINGS.batch_size)
    assert published_steps(redis_client, run_dir) == {1: 0, 2: 3, 3: 6, 4: 9}
    assert int(redis_client.get(keys.weights_latest(run_dir.name))) == 4
    assert redis_client.zrange(keys.weights_versions(run_dir.name), 0, -1) == [b"3", b"4"]  # 2 kept in Redis
    assert checkpoint_steps(run_dir) == [5, 10]
    assert LocalEvaluator.from_bytes(GAME, WeightStore(redis_client, run_dir.name, run_dir).load(4)).version == 4
    # The self-play queue was topped up with JSON jobs, each with its own seed.
    run = run_dir.name
    queued = queued_jobs(redis_client, run)
    assert [(job[0], job[2][0]) for job in queued] == [(SELFPLAY_JOB, run)] * 3
    assert len({job[2][1] for job in queued}) == 3
    # Progress for `azjobs status`.
    progress = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.trainer(run)).items()}
    assert (progress["step"], progress["version"], progress["waiting"]) == ("10", "4", "")
    assert progress["samples_trained"] == str(10 * SETTINGS.batch_size)
    for name in ("loss", "policy_loss", "value_loss", "policy_kl"):
        assert math.isfinite(state.losses[name]) and math.isfinite(float(progress[name]))
    assert state.losses["policy_kl"] >= -1e-4  # cross-entropy never falls below the target's entropy
    assert any(m.startswith(b"trainer:") for m in redis_client.smembers(keys.processes(run)))
    assert list((run_dir / "logs").glob("events.out.tfevents.*"))
    assert logs[-1] == "trainer: stopped at step 10, version 4"


def test_queue_is_topped_up_not_overfilled(redis_client: redis.Redis, run_dir: Path) -> None:
    add_shard(redis_client, run_dir, seed=0)
    train(redis_client, run_dir, max_steps=2)
    train(redis_client, run_dir, max_steps=4)
    assert len(queued_jobs(redis_client, run_dir.name)) == 3
    assert redis_client.hget(keys.stats(run_dir.name), "jobs_enqueued") == b"3"


@pytest.mark.parametrize("shards", [0, 1])
def test_waits_for_enough_positions(redis_client: redis.Redis, run_dir: Path, shards: int) -> None:
    have = sum(add_shard(redis_client, run_dir, seed=i).positions for i in range(shards))
    settings = SETTINGS.replace(min_replay_positions=have + 1)
    stop = StopWhenWaiting()
    state, _ = train(redis_client, run_dir, settings, stop=stop, max_steps=50)

    assert stop.waits == 1 and state.step == 0
    assert state.waiting == f"waiting for {have + 1} positions (have {have})"
    progress = redis_client.hgetall(keys.trainer(run_dir.name))
    assert progress[b"waiting"].decode() == state.waiting and progress[b"step"] == b"0"
    assert versions_in(run_dir / "weights") == [1]  # the first version, for the workers to start with
    assert checkpoint_paths(run_dir) == []
    assert len(queued_jobs(redis_client, run_dir.name)) == SETTINGS.selfplay_queue_depth  # self-play asked for


def test_trains_each_position_at_most_its_budget(redis_client: redis.Redis, run_dir: Path) -> None:
    settings = SETTINGS.replace(max_train_per_position=1.0)
    batch = settings.batch_size
    first = add_shard(redis_client, run_dir, seed=0).positions
    stop = StopWhenWaiting()
    state, _ = train(redis_client, run_dir, settings, stop=stop, max_steps=1_000)

    assert stop.waits == 1
    assert state.samples_trained == state.step * batch == (first // batch) * batch  # all of the budget, no more
    assert state.waiting == "trained each position 1 times on average; waiting for new games"

    # New games raise the budget; a resumed trainer spends only the new part of it.
    second = add_shard(redis_client, run_dir, seed=1).positions
    state, logs = train(redis_client, run_dir, settings, stop=StopWhenWaiting(), max_steps=1_000)
    assert any(line.startswith("trainer: resumed from ") for line in logs)
    assert state.samples_trained == state.step * batch == ((first + second) // batch) * batch
    assert state.samples_trained <= settings.max_train_per_position * (first + second)


def test_resumes_from_its_checkpoint(redis_client: redis.Redis, run_dir: Path) -> None:
    add_shard(redis_client, run_dir, seed=0)
    train(redis_client, run_dir, max_steps=7)
    assert checkpoint_steps(run_dir) == [5, 7]  # the scheduled one and the one on exit

    state, logs = train(redis_client, run_dir, max_steps=7)  # nothing left to do: nothing changes
    assert state.step == 7 and state.version == 3
    assert "trainer: resumed from ckpt-000000007.safetensors (step 7, version 3)" in logs

    state, logs = train(redis_client, run_dir, max_steps=12)
    assert (state.step, state.version, state.samples_trained) == (12, 5, 12 * SETTINGS.batch_size)
    assert published_steps(redis_client, run_dir) == {1: 0, 2: 3, 3: 6, 4: 9, 5: 12}
    meta = read_metadata(WeightStore(redis_client, run_dir.name, run_dir).load(5))
    assert meta["samples_trained"] == str(12 * SETTINGS.batch_size)
    assert checkpoint_steps(run_dir)[-1] == 12


def test_the_learning_rate_drops_on_schedule_and_after_a_resume(redis_client: redis.Redis, run_dir: Path) -> None:
    settings = SETTINGS.replace(learning_rate_schedule="4:1e-3,9:1e-4")
    add_shard(redis_client, run_dir, seed=0)

    def rate_in_checkpoint() -> float:
        optimizer = torch.optim.AdamW(build_model(GAME, settings).parameters(), lr=0.5)
        load_latest_checkpoint(run_dir, build_model(GAME, settings), optimizer, log=lambda _: None)
        return optimizer.param_groups[0]["lr"]

    train(redis_client, run_dir, settings, max_steps=3)  # steps 0-2: learning_rate
    assert rate_in_checkpoint() == pytest.approx(SETTINGS.learning_rate)
    train(redis_client, run_dir, settings, max_steps=7)  # resumed; steps 4-6 take the first drop
    assert rate_in_checkpoint() == pytest.approx(1e-3)
    train(redis_client, run_dir, settings, max_steps=12)
    assert rate_in_checkpoint() == pytest.approx(1e-4)


def test_lost_checkpoint_never_lowers_the_version(redis_client: redis.Redis, run_dir: Path) -> None:
    """A trainer killed after publishing but before its next checkpoint: versions still only go up."""
    add_shard(redis_client, run_dir, seed=0)
    train(redis_client, run_dir, max_steps=7)  # v3 published at step 6; checkpoints at 5 (v2) and 7
    newest = checkpoint_paths(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # torn: as if the disk filled up while writing it

    state, logs = train(redis_client, run_dir, max_steps=9)
    assert any(line.startswith(f"warning: checkpoint {newest} is unreadable") for line in logs)
    assert "trainer: resumed from ckpt-000000005.safetensors (step 5, version 2)" in logs
    # Steps 6..9 again; step 6 publishes v4 (not a second v3), step 9 v5.
    assert (state.step, state.version) == (9, 5)
    assert published_steps(redis_client, run_dir) == {1: 0, 2: 3, 3: 6, 4: 6, 5: 9}
    assert int(redis_client.get(keys.weights_latest(run_dir.name))) == 5


def test_restores_the_shard_index_after_redis_lost_it(redis_client: redis.Redis, run_dir: Path) -> None:
    infos = [add_shard(redis_client, run_dir, seed=i) for i in range(2)]
    train(redis_client, run_dir, max_steps=3)
    redis_client.flushall()  # Redis restarted without its data

    state, logs = train(redis_client, run_dir, max_steps=6)
    assert "trainer: restored 2 replay shards into the Redis index from the storage root" in logs
    assert [s.name for s in list_shards(redis_client, run_dir.name)] == shard_names(run_dir / "replay")
    stats = redis_client.hgetall(keys.stats(run_dir.name))
    assert int(stats[b"positions"]) == sum(i.positions for i in infos) and int(stats[b"shards"]) == 2
    # The weights came back from the storage root too, and the versions went on from there.
    assert (state.step, state.version) == (6, 3)
    assert int(redis_client.get(keys.weights_latest(run_dir.name))) == 3
    assert versions_in(run_dir / "weights") == [1, 2, 3]


def _full_data_losses(t: Trainer) -> tuple[float, float]:
    """Policy cross-entropy over every position in the window, and the policy mass on occupied cells."""
    n = t.buffer.size
    planes = torch.from_numpy(t.buffer.planes[:n])  # [N, 2, 3, 3]
    target = torch.from_numpy(t.buffer.policy[:n])  # [N, 9]
    t.learner.model.eval()
    with torch.no_grad():
        logits, _ = t.learner.model(planes)
    occupied = planes.reshape(n, 2, 9).sum(dim=1) > 0  # [N, 9]
    probs = F.softmax(logits, dim=1)
    cross_entropy = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return float(cross_entropy), float((probs * occupied).sum(dim=1).mean())


def test_policy_loss_falls_on_a_fixed_dataset(redis_client: redis.Redis, run_dir: Path) -> None:
    """A real learning signal: the network learns that occupied cells are never searched."""
    for seed in range(2):
        add_shard(redis_client, run_dir, seed=seed, games=64)
    settings = SETTINGS.replace(batch_size=64, publish_every_steps=1_000, checkpoint_every_steps=1_000)
    t = Trainer(settings, Run(run_dir.name, run_dir, redis_client), device="cpu", log=lambda _: None)
    t.buffer.refresh()
    loss_before, illegal_before = _full_data_losses(t)
    losses = []
    for _ in range(100):
        t.step()
        t.read_losses()  # the losses stay on the device until read (no wait for the GPU per step)
        assert all(math.isfinite(v) for v in t.state.losses.values())
        losses.append(t.state.losses["policy_loss"])
    t.close()
    loss_after, illegal_after = _full_data_losses(t)

    assert loss_after < loss_before - 0.2, (loss_before, loss_after)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2
    assert illegal_after < illegal_before / 3, (illegal_before, illegal_after)


def test_train_command_creates_and_then_keeps_the_run(
    redis_client: redis.Redis, redis_url: str, run_dir: Path, keep_signal_handlers: None
) -> None:
    add_shard(redis_client, run_dir, seed=0)
    flags = [
        "train",
        "--redis-url",
        redis_url,
        "--run-dir",
        str(run_dir),
        "--game",
        "tictactoe",
        "--net-blocks",
        "1",
        "--net-channels",
        "8",
        "--batch-size",
        "16",
        "--min-replay-positions",
        "100",
        "--publish-every-steps",
        "2",
        "--max-steps",
        "4",
    ]
    first = CliRunner().invoke(main, flags)
    assert first.exit_code == 0, first.output
    assert versions_in(run_dir / "weights") == [1, 2, 3]
    assert (run_dir / "settings.toml").exists()

    again = CliRunner().invoke(main, [*flags, "--batch-size", "32"])
    assert again.exit_code == 0, again.output
    assert "run tr exists: using its stored settings" in again.stderr
    stored = Settings.from_json(redis_client.get(keys.settings("tr")))
    assert stored.batch_size == 16 and stored.net_channels == 8


# Growing replay window, train/play ratio, evaluations, gating.


def quiet_trainer(client: redis.Redis, run_dir: Path, settings: Settings, logs: list[str] | None = None) -> Trainer:
    log = logs.append if logs is not None else (lambda _: None)
    t = Trainer(settings, Run(run_dir.name, run_dir, client), device="cpu", log=log)
    t.resume()
    return t


def test_the_window_grows_with_the_data(redis_client: redis.Redis, run_dir: Path) -> None:
    from azjobs.storage.replay import powerlaw_window

    total = sum(add_shard(redis_client, run_dir, seed=i).positions for i in range(3))
    fixed = quiet_trainer(redis_client, run_dir, SETTINGS)
    fixed.refresh()
    assert fixed.window() == SETTINGS.replay_buffer_size

    settings = SETTINGS.replace(replay_window_min_rows=200, replay_window_exponent=0.65, replay_window_expand=0.4)
    t = quiet_trainer(redis_client, run_dir, settings)
    t.refresh()
    assert t.positions_total == total and 200 < t.window() == powerlaw_window(total, 200, 0.65, 0.4) < total
    t.step()
    t.report(force=True)
    assert redis_client.hget(keys.trainer(run_dir.name), "replay_window") == str(t.window()).encode()
    capped = quiet_trainer(redis_client, run_dir, settings.replace(replay_buffer_size=250, min_replay_positions=100))
    capped.refresh()
    assert capped.window() == 250


def test_selfplay_waits_while_training_lags(redis_client: redis.Redis, run_dir: Path) -> None:
    positions = add_shard(redis_client, run_dir, seed=0).positions
    settings = SETTINGS.replace(min_train_per_position=2.0)
    t = quiet_trainer(redis_client, run_dir, settings)
    t.refresh()
    assert t.queue.count == 0 and t.state.selfplay_paused.startswith("self-play paused")
    assert t.why_wait() == ""  # paused self-play always leaves the trainer a step to take
    steps = 0
    while t.why_pause_selfplay():
        t.step()
        steps += 1
    batch = settings.batch_size
    assert t.state.samples_trained + batch >= 2 * positions > t.state.samples_trained - batch
    assert steps > 1
    assert t.top_up_queue() == settings.selfplay_queue_depth and t.state.selfplay_paused == ""


def eval_jobs(client: redis.Redis, run: str) -> list[tuple]:
    queue = Queue(keys.eval_queue(run), connection=client, serializer=JSONSerializer)
    return [(j.func_name.rsplit(".", 1)[1], *j.args[1:3]) for j in map(queue.fetch_job, queue.job_ids)]


@pytest.mark.parametrize("budget", [1.0, 0.05])
def test_evaluations_are_queued_on_schedule(
    redis_client: redis.Redis, run_dir: Path, tmp_path: Path, budget: float
) -> None:
    """Versions 1-4 are published; 1 and 3 are due (eval_every_versions 2). Without a budget (1) both are
    evaluated; under one, version 3 is not while version 1's jobs wait for a worker."""
    from labels import labelled_lines

    positions = tmp_path / "ttt.jsonl"
    positions.write_text("\n".join(labelled_lines(20)) + "\n")
    add_shard(redis_client, run_dir, seed=0)
    settings = SETTINGS.replace(
        eval_every_versions=2,
        eval_opponents="previous,random",
        eval_simulations=8,
        eval_positions=str(positions),
        eval_budget=budget,
    )
    _, logs = train(redis_client, run_dir, settings, max_steps=9)

    assert (run_dir / "evals" / "positions.jsonl").read_text() == positions.read_text()
    first = [("match", "net:1", "random"), ("accuracy", "net:1", 8), ("accuracy", "net:1", 0)]
    third = [
        ("match", "net:3", "net:1"),
        ("match", "net:3", "random"),
        ("accuracy", "net:3", 8),
        ("accuracy", "net:3", 0),
    ]
    assert eval_jobs(redis_client, run_dir.name) == (first + third if budget == 1 else first)
    assert "trainer: queued 3 evaluation jobs for version 1" in logs
    waiting = redis_client.hget(keys.eval_schedule(run_dir.name), "waiting").decode()
    held = "version 4 is within eval_every_versions (2) of version 3"
    assert waiting == (held if budget == 1 else "3 evaluation jobs are still queued or running")


def test_a_bad_positions_file_stops_the_trainer_at_once(
    redis_client: redis.Redis, run_dir: Path, tmp_path: Path
) -> None:
    from azjobs.errors import AzjobsError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"moves": "5", "scores": [1]}\n')
    with pytest.raises(AzjobsError, match='bad.jsonl line 1: needs "scores"'):
        train(redis_client, run_dir, SETTINGS.replace(eval_positions=str(bad)), max_steps=1)


def test_gating_stages_new_versions(redis_client: redis.Redis, run_dir: Path) -> None:
    add_shard(redis_client, run_dir, seed=0)
    settings = SETTINGS.replace(gating=True, eval_every_versions=0)
    state, logs = train(redis_client, run_dir, settings, max_steps=7)

    store = WeightStore(redis_client, run_dir.name, run_dir)
    assert state.version == 3 and store.latest_version() == 1  # 2 and 3 wait for their gates
    assert versions_in(run_dir / "weights") == [1] and store.staged_versions() == [2, 3]
    assert [job[:2] for job in eval_jobs(redis_client, run_dir.name)] == [("gate", 2), ("gate", 3)]
    assert "trainer: staged weights version 2 at step 3 for its gate" in logs
    state, _ = train(redis_client, run_dir, settings, max_steps=9)  # resumed: numbers go on from the staged ones
    assert state.version == 4 and store.staged_versions() == [2, 3, 4] and store.latest_version() == 1


def test_evaluations_become_ratings_and_curves(redis_client: redis.Redis, run_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from azjobs.eval import records
    from azjobs.eval.match import MatchRecord

    add_shard(redis_client, run_dir, seed=0)
    t = quiet_trainer(redis_client, run_dir, SETTINGS.replace(eval_every_versions=0))
    run = run_dir.name
    match = MatchRecord(
        id="m1",
        time=1.0,
        purpose="schedule",
        a="net:2",
        b="random",
        a_wins=8,
        draws=1,
        b_wins=1,
        a_first_wins=4,
        a_first_draws=1,
        a_first_losses=0,
        openings=5,
        opening_moves=2,
        seconds=1.0,
        sims=8,
        versions={"net:2": {"version": 2, "step": 30}},
    )
    scored = records.AccuracyRecord(
        id="a1",
        time=1.0,
        player="net:2",
        sims=0,
        positions=10,
        weak_accuracy=0.7,
        strong_accuracy=0.6,
        phases={},
        random_weak_accuracy=0.4,
        seconds=1.0,
        version={"version": 2, "step": 30},
    )
    records.save(redis_client, run, run_dir, match)
    records.save(redis_client, run, run_dir, scored)
    t.refresh()
    t.close()

    ratings = records.read_ratings(redis_client, run)
    assert list(ratings) == ["net:2", "random"] and ratings["net:2"]["elo"] > 200
    assert json.loads((run_dir / "evals" / "ratings.json").read_text())["ratings"] == ratings
    curves = EventAccumulator(str(run_dir / "logs"))
    curves.Reload()
    assert [(e.step, round(e.value, 3)) for e in curves.Scalars("eval/weak_accuracy_net")] == [(30, 0.7)]
    assert [(e.step, round(e.value)) for e in curves.Scalars("eval/elo")] == [(30, round(ratings["net:2"]["elo"]))]


def _one_step(batch: tuple[np.ndarray, ...]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    torch.manual_seed(0)
    model = build_model(GAME, SETTINGS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    losses = learner.train_step(model, optimizer, batch, torch.device("cpu"))
    return {k: v.clone() for k, v in model.state_dict().items()}, dict(zip(learner.LOSS_NAMES, losses.tolist()))


def test_positions_without_a_policy_target_train_the_value_alone() -> None:
    """Playout cap randomization: the policy of a cheap search is no target; the value still is."""
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 2, size=(8, *GAME.planes_shape)).astype(np.uint8)
    policy = rng.dirichlet(np.ones(9), size=8).astype(np.float32)
    value = rng.choice([-1.0, 0.0, 1.0], size=8).astype(np.float32)
    weight = np.array([1, 0, 1, 0, 0, 1, 0, 0], np.float32)
    other = policy.copy()
    other[weight == 0] = rng.dirichlet(np.ones(9), size=5)
    masked, losses = _one_step((planes, policy, value, weight))
    again, losses_again = _one_step((planes, other, value, weight))
    for name in masked:  # the masked positions' policies changed nothing at all
        torch.testing.assert_close(masked[name], again[name], rtol=0, atol=0)
    assert losses == losses_again
    unmasked, _ = _one_step((planes, other, value, np.ones(8, np.float32)))
    assert not torch.equal(unmasked["policy_out.weight"], masked["policy_out.weight"])
    # Without any target, the policy head gets no gradient; the value head and the tower still learn.
    none_, losses_none = _one_step((planes, policy, value, np.zeros(8, np.float32)))
    assert losses_none["policy_loss"] == 0
    untrained = build_model_at_seed_0()
    decay = 1 - 1e-2 * 1e-4  # AdamW's decoupled weight decay moves every weight a little
    torch.testing.assert_close(none_["policy_out.weight"], untrained["policy_out.weight"] * decay)
    assert not torch.allclose(none_["value_head.0.weight"], untrained["value_head.0.weight"] * decay)


def build_model_at_seed_0() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model(GAME, SETTINGS).state_dict()


def test_the_replay_buffer_samples_the_policy_weights(run_dir: Path) -> None:
    records = play_games(
        GAME, selfplay_config(SETTINGS.replace(full_search_prob=0.3)), uniform, 20, np.random.default_rng(1)
    )
    write_shard(
        run_dir / "replay",
        records,
        game=GAME.name,
        job_id="j",
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )
    buffer = ReplayBuffer(run_dir, GAME, capacity=1000, rng=np.random.default_rng(2))
    assert buffer.refresh() == records.positions
    planes, policy, value, weight = buffer.sample(500)
    assert set(np.unique(weight)) == {0.0, 1.0}
    assert abs(weight.mean() - records.policy_weight.mean()) < 0.1


def test_a_trainer_started_with_its_own_cadence_keeps_the_runs_settings(
    redis_client: redis.Redis, redis_url: str, run_dir: Path, keep_signal_handlers: None
) -> None:
    from azjobs.cluster import status

    add_shard(redis_client, run_dir, seed=0)
    flags = [
        "train",
        "--redis-url",
        redis_url,
        "--run-dir",
        str(run_dir),
        "--game",
        "tictactoe",
        "--net-blocks",
        "1",
        "--net-channels",
        "8",
        "--batch-size",
        "16",
        "--min-replay-positions",
        "100",
    ]
    first = CliRunner().invoke(main, [*flags, "--publish-every-steps", "2", "--max-steps", "4"])
    assert first.exit_code == 0, first.output
    # On the existing run: its own publishing and checkpoint cadence; --batch-size 32 stays the run's 16.
    again = CliRunner().invoke(
        main,
        [
            *flags,
            "--batch-size",
            "32",
            "--publish-every-steps",
            "3",
            "--checkpoint-every-steps",
            "7",
            "--max-steps",
            "10",
        ],
    )
    assert again.exit_code == 0, again.output
    assert "using its stored settings" in again.stderr
    assert (
        "trainer: this process's own publish_every_steps 3 (the run's: 2), checkpoint_every_steps 7 (the run's: 200)"
    ) in again.stderr
    assert published_steps(redis_client, run_dir) == {1: 0, 2: 2, 3: 4, 4: 6, 5: 9}
    assert checkpoint_steps(run_dir) == [4, 7, 10]
    for stored in (Settings.from_json(redis_client.get(keys.settings("tr"))), read_file(run_dir)):  # tictactoe: 200
        assert (stored.publish_every_steps, stored.checkpoint_every_steps, stored.batch_size) == (2, 200, 16)
    (beat,) = [p for p in status.collect(redis_client, "tr").processes if p["role"] == "trainer"]
    assert (beat["publish_every_steps"], beat["checkpoint_every_steps"], beat["eval_every_versions"]) == (
        "3",
        "7",
        "10",
    )
    assert status.collect(redis_client, "tr").overrides == {
        f"trainer:{beat['id']}": {"publish_every_steps": 3, "checkpoint_every_steps": 7}
    }


def test_a_trainer_refuses_a_run_setting_as_its_own(redis_client: redis.Redis, run_dir: Path) -> None:
    with pytest.raises(SettingsError, match="batch_size is not one `azjobs train` takes for itself"):
        train(redis_client, run_dir, own={"batch_size": 32})


def test_the_trainer_trains_on_the_targets_its_settings_ask_for(redis_client: redis.Redis, run_dir: Path) -> None:
    """Q in the value, duplicates merged, surprise sampling and the soft policy loss, all on at once."""
    add_shard(redis_client, run_dir, seed=0)
    settings = SETTINGS.replace(
        value_target_q_weight=0.5, merge_duplicates=0.8, policy_surprise_weight=0.5, soft_policy_weight=8.0
    )
    state, _ = train(redis_client, run_dir, settings, max_steps=4)
    assert state.step == 4 and all(math.isfinite(v) for v in state.losses.values())
    assert state.losses["soft_policy_loss"] > 0
