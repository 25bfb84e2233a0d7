"""The averaged network: an exponential moving average of the trained weights, which the trainer
publishes instead of them with `ema_decay` above 0 (Leela Zero: the averaged nets were usually the
stronger). Its decay is a pure function of the step, and checkpoints keep it, so a resume continues it.
"""

from __future__ import annotations

import copy

import torch

from azjobs.net.model import PolicyValueNet

WARMUP = 10  # the decay of step t is at most (1 + t) / (WARMUP + t): early on, the average follows closely


def decay_at(ema_decay: float, step: int) -> float:
    """The decay of the update after training step `step` (0-based): min(ema_decay, (1 + t) / (10 + t))."""
    return min(ema_decay, (1.0 + step) / (WARMUP + step))


class AveragedNetwork:
    """A copy of the network whose every floating-point tensor (weights and batch-norm running
    statistics alike) is the moving average of the trained one's; integer buffers (batch norm's
    `num_batches_tracked`) are copied. It never trains: it is only read, to be published."""

    def __init__(self, model: PolicyValueNet, ema_decay: float) -> None:
        self.ema_decay = ema_decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self._pairs = _float_pairs(self.model, model)
        self._copied = _other_pairs(self.model, model)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After training step `step`: average <- average + (1 - decay) x (trained - average)."""
        averaged, trained = self._pairs
        torch._foreach_lerp_(averaged, trained, 1.0 - decay_at(self.ema_decay, step))
        for mine, theirs in self._copied:
            mine.copy_(theirs)


def _float_pairs(mine: torch.nn.Module, theirs: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The floating-point tensors of `mine`'s state and the same of `theirs`, in the same order."""
    ours, other = mine.state_dict(keep_vars=True), theirs.state_dict(keep_vars=True)
    names = [name for name, t in ours.items() if t.is_floating_point()]
    return [ours[n].data for n in names], [other[n].data for n in names]


def _other_pairs(mine: torch.nn.Module, theirs: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ours, other = mine.state_dict(keep_vars=True), theirs.state_dict(keep_vars=True)
    return [(t.data, other[n].data) for n, t in ours.items() if not t.is_floating_point()]
