"""The trainer on a GPU (marked `cuda`, skipped without one): training resumes from its checkpoint on the
device, in the precision its compute capability calls for; fp16 trains with a gradient scaler."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import redis
import torch
from cuda_marks import cuda
from test_trainer import GAME, SETTINGS, add_shard, checkpoint_steps

from azjobs import keys
from azjobs.net import device as devices
from azjobs.net.model import build_model
from azjobs.run import Run
from azjobs.train import learner, trainer
from azjobs.train.precision import MixedPrecision, adamw


def train_on(client: redis.Redis, run_dir: Path, device: str, max_steps: int) -> tuple[trainer.TrainerState, list[str]]:
    logs: list[str] = []
    state = trainer.run(
        SETTINGS, Run(run_dir.name, run_dir, client), device=device, max_steps=max_steps, log=logs.append
    )
    return state, logs


@cuda
def test_the_trainer_on_cuda_resumes_from_its_checkpoint(redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "gpu"
    add_shard(redis_client, run_dir, seed=0)
    train_on(redis_client, run_dir, "cuda", 7)
    assert checkpoint_steps(run_dir) == [5, 7]
    state, logs = train_on(redis_client, run_dir, "cuda", 12)
    assert "trainer: resumed from ckpt-000000007.safetensors (step 7, version 3)" in logs
    assert (state.step, state.version) == (12, 5)
    assert all(math.isfinite(v) for v in state.losses.values()) and set(state.losses) == set(learner.LOSS_NAMES)
    beat = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.trainer(run_dir.name)).items()}
    device = devices.resolve("cuda")
    assert beat["device"] == str(device)
    assert beat["precision"] == devices.auto_cuda_precision(devices.capability(device))
    # A checkpoint written on the GPU resumes on a CPU too (fused AdamW there is the process's choice).
    state, logs = train_on(redis_client, run_dir, "cpu", 14)
    assert state.step == 14 and "resumed from ckpt-000000012" in " ".join(logs)


def fixed_batch(size: int = 64) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 2, size=(size, *GAME.planes_shape)).astype(np.uint8)
    policy = rng.dirichlet(np.ones(GAME.num_actions), size=size).astype(np.float32)
    return planes, policy, rng.choice([-1.0, 0.0, 1.0], size=size).astype(np.float32)


@cuda
def test_fp16_training_scales_the_loss_and_learns() -> None:
    device = devices.resolve("cuda")
    torch.manual_seed(0)
    model = build_model(GAME, SETTINGS).to(device)
    mixed = MixedPrecision(device, "fp16")
    optimizer = adamw(model.parameters(), device, 1e-2, 1e-4)
    assert mixed.scaler is not None and optimizer.param_groups[0]["fused"]
    batch = fixed_batch()
    losses = [learner.train_step(model, optimizer, batch, device, mixed) for _ in range(60)]
    first, last = losses[0].tolist(), losses[-1].tolist()
    assert all(math.isfinite(v) for v in last) and last[0] < first[0] - 0.3, (first, last)
    assert mixed.scaler.get_scale() > 1  # the scale is live (halved on overflow, grown otherwise)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


@cuda
def test_bf16_needs_no_scaler() -> None:
    mixed = MixedPrecision(devices.resolve("cuda"), "bf16")
    assert mixed.scaler is None and mixed.name == "bf16"
