"""The averaged network: its update follows the documented formula, batch norm included; the trainer
publishes it (what gpu-serve serves), checkpoints it, and a resume continues it."""

from __future__ import annotations

from pathlib import Path

import prepared_shards
import pytest
import redis
import torch
from cuda_marks import cuda
from prepared_shards import GAME

from azjobs.net.model import build_model
from azjobs.net.weights import load_into
from azjobs.run import Run
from azjobs.settings import Settings, SettingsError
from azjobs.storage.checkpoints import load_latest_checkpoint, save_checkpoint
from azjobs.storage.weights import WeightStore
from azjobs.train.averaging import AveragedNetwork, decay_at
from azjobs.train.trainer import Trainer

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
    checkpoint_every_steps=1000,
    max_train_per_position=100.0,
    ema_decay=0.9,
)

State = dict[str, torch.Tensor]


def add_shard(client: redis.Redis, run_dir: Path) -> None:
    prepared_shards.add_shard(client, run_dir, SETTINGS)


def state_of(model: torch.nn.Module) -> State:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def averaged(average: State, trained: State, step: int, decay: float) -> State:
    """The documented update: floats move (1 - d) of the way to the trained ones, the rest are copied."""
    d = decay_at(decay, step)
    return {n: d * a + (1 - d) * trained[n] if a.is_floating_point() else trained[n] for n, a in average.items()}


def assert_same(a: State, b: State) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name].cpu(), b[name].cpu(), rtol=1e-5, atol=1e-6, msg=name)


def test_the_decay_warms_up_to_ema_decay() -> None:
    assert [decay_at(0.99, t) for t in (0, 1, 10, 90, 10**6)] == pytest.approx([0.1, 2 / 11, 0.55, 0.91, 0.99])
    with pytest.raises(SettingsError, match=r"ema_decay must be a number in \[0, 1\)"):
        Settings(ema_decay=1.0)


def test_the_average_follows_the_formula_batch_norm_included() -> None:
    model = build_model(GAME, SETTINGS)
    network = AveragedNetwork(model, 0.9)
    expected = state_of(model)
    generator = torch.Generator().manual_seed(0)
    for step in (0, 1, 50):
        with torch.no_grad():  # new weights and batch-norm statistics, as a training step would leave them
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.copy_(torch.randn(t.shape, generator=generator))
                else:
                    t.add_(1)
        network.update(step)
        expected = averaged(expected, state_of(model), step, 0.9)
        assert_same(state_of(network.model), expected)
    assert any("running_var" in name for name in expected) and any("num_batches" in name for name in expected)


def test_a_checkpoint_without_an_average_starts_it_from_the_model(tmp_path: Path) -> None:
    model = build_model(GAME, SETTINGS)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path, model=model, optimizer=optimizer, step=4, version=1, settings=SETTINGS)
    torch.manual_seed(5)
    other, average = build_model(GAME, SETTINGS), build_model(GAME, SETTINGS)
    load_latest_checkpoint(tmp_path, other, torch.optim.AdamW(other.parameters()), averaged=average, log=print)
    assert_same(state_of(average), state_of(model))


def quiet_trainer(client: redis.Redis, run_dir: Path, device: str) -> Trainer:
    t = Trainer(SETTINGS, Run(run_dir.name, run_dir, client), device=device, log=lambda _: None)
    t.resume()
    t.refresh()
    return t


def published(client: redis.Redis, run_dir: Path, version: int) -> State:
    model = build_model(GAME, SETTINGS)
    load_into(model, WeightStore(client, run_dir.name, run_dir).load(version))
    return state_of(model)


def test_the_trainer_publishes_the_average_and_a_resume_continues_it(redis_client: redis.Redis, tmp_path: Path) -> None:
    publishes_the_average_and_resumes_it(redis_client, tmp_path / "ema", "cpu")


@cuda
def test_the_average_on_cuda(redis_client: redis.Redis, tmp_path: Path) -> None:
    publishes_the_average_and_resumes_it(redis_client, tmp_path / "ema", "cuda")


def publishes_the_average_and_resumes_it(redis_client: redis.Redis, run_dir: Path, device: str) -> None:
    add_shard(redis_client, run_dir)
    t = quiet_trainer(redis_client, run_dir, device)
    expected = state_of(t.learner.model)  # the average starts at the initial weights (version 1)
    assert_same(published(redis_client, run_dir, 1), expected)
    for step in range(3):
        t.step()
        expected = averaged(expected, state_of(t.learner.model), step, SETTINGS.ema_decay)
    assert_same(published(redis_client, run_dir, 2), expected)  # published at step 3: the average
    trained = state_of(t.learner.model)
    assert not torch.allclose(
        published(redis_client, run_dir, 2)["policy_out.weight"], trained["policy_out.weight"].cpu()
    )
    t.close()  # the checkpoint on exit keeps the average

    resumed = quiet_trainer(redis_client, run_dir, device)
    assert_same(state_of(resumed.learner.model), trained)
    assert_same(state_of(resumed.learner.published), expected)
    for step in range(3, 6):
        resumed.step()
        expected = averaged(expected, state_of(resumed.learner.model), step, SETTINGS.ema_decay)
    assert_same(published(redis_client, run_dir, 3), expected)
    resumed.close()
