"""Checkpoints: an exact resume of model and AdamW state, pruning, and falling back past a corrupt file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from azjobs.errors import AzjobsError
from azjobs.settings import Settings
from azjobs.storage.checkpoints import checkpoint_paths, load_latest_checkpoint, save_checkpoint

SETTINGS = Settings(game="tictactoe", net_blocks=1)


def tiny_model(seed: int, hidden: int = 8) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))


def optimizer_for(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    gen = torch.Generator().manual_seed(100 + step)
    x, y = torch.randn(16, 4, generator=gen), torch.randn(16, 2, generator=gen)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    if step == 1:
        optimizer.param_groups[0]["lr"] = 3e-3  # as a schedule would: the group must be restored too


def save(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> Path:
    return save_checkpoint(
        run_dir, model=model, optimizer=optimizer, step=step, version=step // 2, settings=SETTINGS, extra={"loss": 0.5}
    )


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    straight = tiny_model(0)
    straight_opt = optimizer_for(straight)
    for step in range(1, 4):
        train_step(straight, straight_opt, step)

    first = tiny_model(0)
    first_opt = optimizer_for(first)
    for step in range(1, 3):
        train_step(first, first_opt, step)
    path = save(tmp_path, first, first_opt, step=2)
    assert path == tmp_path / "checkpoints" / "ckpt-000000002.safetensors"

    resumed = tiny_model(seed=1)  # different initial weights, fresh optimizer
    resumed_opt = optimizer_for(resumed)
    info = load_latest_checkpoint(tmp_path, resumed, resumed_opt)
    assert info is not None
    assert (info.step, info.version, info.extra, info.path) == (2, 1, {"loss": 0.5}, path)
    assert resumed_opt.param_groups[0]["lr"] == 3e-3
    assert resumed_opt.param_groups[0]["betas"] == (0.9, 0.999)
    train_step(resumed, resumed_opt, 3)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight_opt.state.values(), resumed_opt.state.values()):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_scalar_optimizer_state_round_trips(tmp_path: Path) -> None:
    model = tiny_model(0)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_step(model, sgd, 2)
    sgd.state[next(iter(model.parameters()))]["custom_count"] = 7  # a plain int entry
    save_checkpoint(tmp_path, model=model, optimizer=sgd, step=1, version=0, settings=SETTINGS)
    other = tiny_model(1)
    other_sgd = torch.optim.SGD(other.parameters(), lr=0.5, momentum=0.9)
    load_latest_checkpoint(tmp_path, other, other_sgd)
    restored = other_sgd.state[next(iter(other.parameters()))]
    assert restored["custom_count"] == 7 and type(restored["custom_count"]) is int
    assert other_sgd.param_groups[0]["lr"] == 0.1


def test_keeps_the_newest_three(tmp_path: Path) -> None:
    model = tiny_model(0)
    opt = optimizer_for(model)
    train_step(model, opt, 2)
    for step in (100, 200, 300, 400, 500):
        save(tmp_path, model, opt, step)
    assert [p.name for p in checkpoint_paths(tmp_path)] == [f"ckpt-{s:09d}.safetensors" for s in (300, 400, 500)]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_corrupt_newest_falls_back_to_the_previous(tmp_path: Path) -> None:
    model = tiny_model(0)
    opt = optimizer_for(model)
    train_step(model, opt, 2)
    save(tmp_path, model, opt, step=10)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    train_step(model, opt, 3)
    newest = save(tmp_path, model, opt, step=20)
    newest.write_bytes(newest.read_bytes()[:300])

    fresh = tiny_model(5)
    logs: list[str] = []
    info = load_latest_checkpoint(tmp_path, fresh, optimizer_for(fresh), log=logs.append)
    assert info is not None and info.step == 10
    assert len(logs) == 1 and "warning" in logs[0] and newest.name in logs[0]
    assert all(torch.equal(expected[k], v) for k, v in fresh.state_dict().items())


def test_no_checkpoint_and_wrong_network(tmp_path: Path) -> None:
    model = tiny_model(0)
    assert load_latest_checkpoint(tmp_path, model, optimizer_for(model)) is None
    opt = optimizer_for(model)
    train_step(model, opt, 2)
    save(tmp_path, model, opt, step=1)
    wider = tiny_model(0, hidden=16)
    with pytest.raises(AzjobsError, match="does not fit this network"):
        load_latest_checkpoint(tmp_path, wider, optimizer_for(wider))


@pytest.mark.parametrize("fused", [True, False])
def test_the_optimizer_keeps_this_machines_kernel(tmp_path: Path, fused: bool) -> None:
    """A checkpoint of a CPU trainer resumed on a GPU (fused AdamW there) and back: the learning rate
    comes from the checkpoint, the choice of kernel from the process that resumes."""
    first = tiny_model(0)
    first_opt = torch.optim.AdamW(first.parameters(), lr=1e-2, fused=not fused)
    train_step(first, first_opt, 1)
    save(tmp_path, first, first_opt, step=1)
    resumed = tiny_model(1)
    resumed_opt = torch.optim.AdamW(resumed.parameters(), lr=0.5, fused=fused)
    load_latest_checkpoint(tmp_path, resumed, resumed_opt)
    assert resumed_opt.param_groups[0]["fused"] is fused and resumed_opt.param_groups[0]["lr"] == 3e-3
    train_step(resumed, resumed_opt, 2)  # steps with the state it was given
    assert all(torch.isfinite(p).all() for p in resumed.parameters())
