"""The training step's soft policy loss (KataGo's auxiliary soft policy target), checked by hand."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from azjobs.games import get_game
from azjobs.net.model import build_model
from azjobs.settings import Settings
from azjobs.train import learner
from azjobs.train.learner import SoftPolicy, soft_targets

GAME = get_game("tictactoe")
SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8)


def batch(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    planes = rng.integers(0, 2, size=(8, *GAME.planes_shape)).astype(np.uint8)
    policy = rng.dirichlet(np.full(9, 0.3), size=8).astype(np.float32)
    policy[:, 4] = 0  # an illegal move: no mass in the target, none in the soft target
    policy /= policy.sum(axis=1, keepdims=True)
    value = rng.choice([-1.0, 0.0, 1.0], size=8).astype(np.float32)
    weight = np.array([1, 1, 0, 1, 1, 1, 0, 1], np.float32)
    return planes, policy, value, weight


def one_step(data: tuple[np.ndarray, ...], soft: SoftPolicy) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    torch.manual_seed(0)
    model = build_model(GAME, SETTINGS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    losses = learner.train_step(model, optimizer, data, torch.device("cpu"), soft=soft)
    return {k: v.clone() for k, v in model.state_dict().items()}, dict(zip(learner.LOSS_NAMES, losses.tolist()))


def test_the_soft_target_is_the_policy_raised_to_one_over_t_renormalised() -> None:
    policy = torch.tensor([[0.60, 0.36, 0.03, 0.01, 0.0]])
    soft = soft_targets(policy, 4.0)
    expected = policy**0.25 / (policy**0.25).sum()
    torch.testing.assert_close(soft, expected)
    assert soft[0, 4] == 0 and soft[0, 2] > 0.1  # KataGo's example: 3% becomes about 14%


def test_the_soft_policy_loss_is_the_tempered_cross_entropy_weighted_in() -> None:
    data = batch()
    planes, policy, _, weight = (torch.from_numpy(a) for a in data)
    torch.manual_seed(0)
    model = build_model(GAME, SETTINGS).train()
    with torch.no_grad():
        logits, _ = model(planes)  # what train_step's forward pass sees (batch-norm in training mode)
    target = soft_targets(policy, 4.0)
    per_row = -(target * F.log_softmax(logits / 4.0, dim=1)).sum(dim=1)
    expected = float((weight * per_row).sum() / weight.sum())

    _, plain = one_step(data, SoftPolicy())
    soft_weights, soft = one_step(data, SoftPolicy(weight=8.0, temperature=4.0))
    assert plain["soft_policy_loss"] == 0.0  # off by default: the step is today's
    assert abs(soft["soft_policy_loss"] - expected) < 1e-5
    assert abs(soft["loss"] - (soft["policy_loss"] + soft["value_loss"] + 8.0 * expected)) < 1e-4
    assert abs(soft["policy_loss"] - plain["policy_loss"]) < 1e-6  # same forward pass, same main losses
    plain_weights, _ = one_step(data, SoftPolicy())
    assert not torch.equal(soft_weights["policy_out.weight"], plain_weights["policy_out.weight"])


def test_positions_without_a_policy_target_have_no_soft_target_either() -> None:
    data = batch(1)
    other = data[1].copy()
    other[data[3] == 0] = np.random.default_rng(2).dirichlet(np.ones(9), size=int((data[3] == 0).sum()))
    first, losses = one_step(data, SoftPolicy(weight=2.0))
    again, losses_again = one_step((data[0], other, data[2], data[3]), SoftPolicy(weight=2.0))
    for name in first:
        torch.testing.assert_close(first[name], again[name], rtol=0, atol=0)
    assert losses == losses_again
