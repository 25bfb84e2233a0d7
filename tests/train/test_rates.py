"""What the run's progress sets: the learning-rate cycle of each step (and after a resume), and the
simulations each self-play job is queued with (progressive simulations), against docs/training.md."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import prepared_shards
import pytest
import redis
import torch
from prepared_shards import GAME
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from azjobs import keys
from azjobs.jobs.configs import selfplay_config
from azjobs.net.model import build_model
from azjobs.run import Run
from azjobs.settings import Settings, SettingsError
from azjobs.storage.checkpoints import load_latest_checkpoint
from azjobs.train import rates, trainer
from azjobs.train.trainer import Trainer

SETTINGS = Settings(
    game="tictactoe",
    net_blocks=1,
    net_channels=8,
    num_simulations=8,
    temperature_moves=9,
    batch_size=16,
    learning_rate=1e-3,
    min_replay_positions=100,
    replay_buffer_size=5_000,
    publish_every_steps=3,
    checkpoint_every_steps=5,
    selfplay_queue_depth=3,
    max_train_per_position=100.0,
)


def add_shard(client: redis.Redis, run_dir: Path, seed: int = 0) -> None:
    prepared_shards.add_shard(client, run_dir, SETTINGS, seed)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "rates"


# The learning rate.


def test_the_cycles_follow_their_formula() -> None:
    base = Settings(learning_rate=1e-3, learning_rate_period=10, learning_rate_peak=5.0)
    # Every 10 steps a triangle from 1x up to 5x (step 5) and back: 1 + 4 x (1 - |2 (step mod 10) / 10 - 1|).
    triangle = {0: 1.0, 2: 2.6, 5: 5.0, 8: 2.6, 9: 1.8}
    cyclic = base.replace(learning_rate_cycle="cyclic")
    for step, factor in triangle.items():
        for cycle in (0, 1, 7):
            assert rates.learning_rate(cyclic, step + 10 * cycle) == pytest.approx(1e-3 * factor)
    one_cycle = base.replace(learning_rate_cycle="one_cycle")
    assert [rates.cycle_factor(one_cycle, s) for s in (0, 2, 5, 8)] == pytest.approx([1.0, 2.6, 5.0, 2.6])
    assert [rates.cycle_factor(one_cycle, s) for s in (10, 12, 15, 10_000)] == [1.0] * 4  # once, then constant
    assert all(rates.learning_rate(base, s) == 1e-3 for s in (0, 5, 15))  # constant: today's rate
    # The cycle multiplies the scheduled drops.
    dropped = cyclic.replace(learning_rate_schedule="20:1e-4")
    assert rates.learning_rate(dropped, 25) == pytest.approx(5e-4) and rates.learning_rate(dropped, 15) == 5e-3


def test_a_misnamed_cycle_is_refused() -> None:
    with pytest.raises(SettingsError, match="learning_rate_cycle must be one of constant, one_cycle, cyclic"):
        Settings(learning_rate_cycle="cosine")


def test_the_trainer_follows_the_cycle_across_resumes(redis_client: redis.Redis, run_dir: Path) -> None:
    settings = SETTINGS.replace(learning_rate_cycle="cyclic", learning_rate_period=8, learning_rate_peak=3.0)
    add_shard(redis_client, run_dir)

    def rate_in_checkpoint() -> float:
        optimizer = torch.optim.AdamW(build_model(GAME, settings).parameters(), lr=0.5)
        load_latest_checkpoint(run_dir, build_model(GAME, settings), optimizer, log=lambda _: None)
        return float(optimizer.param_groups[0]["lr"])

    def train(max_steps: int) -> None:
        trainer.run(
            settings, Run(run_dir.name, run_dir, redis_client), device="cpu", max_steps=max_steps, log=lambda _: None
        )

    # The rate of the last step taken: 1 + 2 x (1 - |2 (step mod 8) / 8 - 1|) times learning_rate.
    train(4)  # steps 0-3: the last at 2.5x
    assert rate_in_checkpoint() == pytest.approx(2.5e-3)
    train(7)  # resumed at step 4 (the peak, 3x); the last, step 6, at 2x
    assert rate_in_checkpoint() == pytest.approx(2e-3)
    train(12)  # steps 7-11: step 8 starts the next cycle; step 11 at 2.5x
    assert rate_in_checkpoint() == pytest.approx(2.5e-3)
    t = Trainer(settings, Run(run_dir.name, run_dir, redis_client), device="cpu", log=lambda _: None)
    t.resume()
    t.refresh()
    t.step()  # step 12, in the middle of the second cycle: 3x, what TensorBoard's train/learning_rate shows
    assert t.snapshot().learning_rate == pytest.approx(3e-3)
    t.close()


# Progressive simulations.


def test_the_simulations_rise_with_the_positions_made() -> None:
    ramp = Settings(num_simulations=100, simulations_start=20, simulations_ramp_positions=1000)
    counts = {0: 20, 1: 20, 13: 21, 500: 60, 999: 99, 1000: 100, 10**9: 100}
    assert {made: rates.simulations(ramp, made) for made in counts} == counts  # 20 + 80 x made / 1000, down
    assert rates.simulations(Settings(num_simulations=100), 0) == 100  # off: num_simulations throughout
    with pytest.raises(SettingsError, match="simulations_start .* exceeds num_simulations"):
        Settings(num_simulations=50, simulations_start=60)


def queued_simulations(client: redis.Redis, run: str) -> list[int | None]:
    """The `simulations` each queued self-play job carries (None: the job's num_simulations)."""
    queue = Queue(keys.selfplay_queue(run), connection=client, serializer=JSONSerializer)
    jobs = [json.loads(zlib.decompress(client.hget(Job.key_for(i), "data"))) for i in queue.job_ids]
    queue.empty()
    return [job[3].get("simulations") for job in jobs]


def test_jobs_are_queued_with_the_simulations_of_their_time(redis_client: redis.Redis, run_dir: Path) -> None:
    settings = SETTINGS.replace(simulations_start=2, simulations_ramp_positions=1000)
    t = Trainer(settings, Run(run_dir.name, run_dir, redis_client), device="cpu", log=lambda _: None)
    t.resume()
    run = run_dir.name
    for made, count in ((0, 2), (500, 5), (999, 7), (1000, 8), (5000, 8)):  # 2 + 6 x made / 1000, rounded down
        redis_client.hset(keys.stats(run), "positions", made)
        t.refresh()
        assert queued_simulations(redis_client, run) == [count] * settings.selfplay_queue_depth
    t.close()
    curves = EventAccumulator(str(run_dir / "logs"))
    curves.Reload()
    assert [e.value for e in curves.Scalars("train/simulations")][-1] == 8  # the count last queued

    plain = Trainer(SETTINGS, Run(run_dir.name, run_dir, redis_client), device="cpu", log=lambda _: None)
    plain.resume()
    plain.refresh()
    assert queued_simulations(redis_client, run) == [None] * SETTINGS.selfplay_queue_depth  # off: as before
    plain.close()


def test_a_jobs_count_replaces_num_simulations_in_its_search() -> None:
    settings = SETTINGS.replace(full_search_prob=0.25, cheap_simulations=6)
    config = selfplay_config(settings, simulations=3)
    assert config.search.num_simulations == 3 and config.search.cheap_budget == 3  # cheap never above full
    assert config.temperature_moves == settings.temperature_moves
    assert selfplay_config(settings, None) == selfplay_config(settings)
