"""The network in training: one minibatch step (policy cross-entropy plus value MSE, and KataGo's soft
policy loss when asked) under the trainer's mixed precision with AdamW at the step's learning rate
(`rates`), the losses summed on the device until they are read, and with `ema_decay` the averaged network
that is published (`averaging`); with `net_grow_schedule`, `grow` swaps in a bigger network computing the
same function (`azjobs.net.grow`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from azjobs.games import Game
from azjobs.net.grow import grown
from azjobs.net.model import PolicyValueNet, build_model
from azjobs.settings import Settings
from azjobs.storage.checkpoints import Parts
from azjobs.train import rates
from azjobs.train.averaging import AveragedNetwork
from azjobs.train.precision import MixedPrecision, adamw

LOSS_NAMES = ("loss", "policy_loss", "value_loss", "policy_kl", "soft_policy_loss")  # train_step's losses


@dataclass(frozen=True)
class SoftPolicy:
    """KataGo's auxiliary soft policy target: the policy target raised to 1 / temperature, renormalised,
    against the policy head's softmax at that temperature, its loss times `weight` (0: off)."""

    weight: float = 0.0
    temperature: float = 4.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SoftPolicy:
        return cls(settings.soft_policy_weight, settings.soft_policy_temperature)


def soft_targets(policy: torch.Tensor, temperature: float) -> torch.Tensor:
    """The policy target raised to 1 / temperature, rows renormalised (all-zero rows stay zero).  # [B, A]"""
    soft = policy.clamp_min(0.0) ** (1.0 / temperature)
    return soft / soft.sum(dim=1, keepdim=True).clamp_min(1e-12)


def train_step(
    model: PolicyValueNet,
    optimizer: torch.optim.Optimizer,
    batch: tuple[np.ndarray, ...],
    device: torch.device,
    precision: MixedPrecision | None = None,
    soft: SoftPolicy = SoftPolicy(),
) -> torch.Tensor:
    """One minibatch (planes, policy, value[, policy_weight]): policy cross-entropy against the search
    policy, over the positions whose policy weight is 1 (all without weights), plus value MSE over all,
    plus `soft.weight` times the cross-entropy of softmax(logits / T) against the soft target there.

    Returns the losses `[5]` (LOSS_NAMES) on the device, detached: reading them would wait for the GPU,
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
    soft_loss = torch.zeros_like(loss)
    if soft.weight > 0:
        tempered = F.log_softmax(logits / soft.temperature, dim=1)
        soft_loss = -(weight * (soft_targets(policy, soft.temperature) * tempered).sum(dim=1)).sum() / targets
        loss = loss + soft.weight * soft_loss
    precision.step(loss, optimizer)
    # The policy target's own entropy, so a perfect fit shows as policy_kl = 0.
    entropy = -(weight * (policy * torch.log(policy.clamp_min(1e-12))).sum(dim=1)).sum() / targets
    return torch.stack([loss, policy_loss, value_loss, policy_loss - entropy, soft_loss]).detach()


class Learner:
    """The run's network on the trainer's device, its AdamW (fused on CUDA) and mixed precision, the
    losses `[5]` summed on the device since they were last read, and the averaged network (or None)."""

    def __init__(self, game: Game, settings: Settings, device: torch.device) -> None:
        self.device, self.settings = device, settings
        torch.manual_seed(settings.seed)
        self.model = build_model(game, settings).to(device)
        self.averaged = AveragedNetwork(self.model, settings.ema_decay) if settings.ema_decay else None
        self.precision = MixedPrecision(device)
        self.soft = SoftPolicy.from_settings(settings)
        self.optimizer = self._new_optimizer()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every step has the same batch shape
        self._loss_sum: torch.Tensor | None = None  # [5] on the device
        self._loss_steps = 0

    def _new_optimizer(self) -> torch.optim.Optimizer:
        s = self.settings
        return adamw(self.model.parameters(), self.device, s.learning_rate, s.weight_decay)

    @property
    def size(self) -> tuple[int, int]:
        """(blocks, channels) of the network in training."""
        return self.model.blocks, self.model.channels

    def grow_to(self, size: tuple[int, int]) -> bool:
        """Grow to (blocks, channels) if that is bigger than the network (and smaller in neither); whether it grew."""
        now = self.size
        if size == now or size[0] < now[0] or size[1] < now[1]:
            return False
        self.grow(*size)
        return True

    def fit(self, architecture: Mapping[str, str]) -> Parts:
        """The parts a checkpoint restores into, grown first to its architecture (the run's network grew)."""
        self.grow_to((int(architecture.get("blocks", 0)), int(architecture.get("channels", 0))))
        return self.model, self.optimizer, self.averaged_model

    def grow(self, blocks: int, channels: int) -> None:
        """Swap in a network of `blocks` x `channels` giving the same outputs (and so its average), with a
        fresh optimizer: the old one's moments belong to other tensors."""
        seed = self.settings.seed + 1_000 * blocks + channels  # the same new weights on every resume
        self.model = grown(self.model, blocks, channels, seed=seed)
        if self.averaged is not None:
            average = grown(self.averaged.model, blocks, channels, seed=seed)
            self.averaged = AveragedNetwork(self.model, self.settings.ema_decay)
            self.averaged.model.load_state_dict(average.state_dict())
        self.optimizer = self._new_optimizer()

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def averaged_model(self) -> PolicyValueNet | None:
        return None if self.averaged is None else self.averaged.model

    @property
    def published(self) -> PolicyValueNet:
        """The network a new weights version holds: the averaged one if there is one, else the trained."""
        return self.model if self.averaged is None else self.averaged.model

    def step(self, batch: tuple[np.ndarray, ...], step: int) -> None:
        """Training step `step` (0-based) at its learning rate (set on every step, so a resume follows
        the schedule), then the average's update."""
        for group in self.optimizer.param_groups:
            group["lr"] = rates.learning_rate(self.settings, step)
        losses = train_step(self.model, self.optimizer, batch, self.device, self.precision, self.soft)
        if self.averaged is not None:
            self.averaged.update(step)
        self._loss_sum = losses if self._loss_sum is None else self._loss_sum + losses
        self._loss_steps += 1

    def read_losses(self) -> dict[str, float] | None:
        """The mean losses (LOSS_NAMES) since the last read, None without a step since: one wait for the GPU."""
        if self._loss_sum is None:
            return None
        means = (self._loss_sum / self._loss_steps).tolist()
        self._loss_sum, self._loss_steps = None, 0
        return dict(zip(LOSS_NAMES, means))
