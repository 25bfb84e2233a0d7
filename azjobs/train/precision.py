"""The trainer's mixed precision: bf16 autocast from compute capability 8.0, fp16 autocast with a
gradient scaler below it, fp32 on a CPU (the choice is `azjobs.net.device`'s, asked of the trainer's GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

from azjobs.net import device as devices


class MixedPrecision:
    """Autocast for the forward pass and, in fp16, loss scaling for the backward pass and the step."""

    def __init__(self, device: torch.device, requested: str = "auto") -> None:
        self.device = device
        self.name = devices.training_precision(requested, device.type, devices.capability(device))
        if self.name == "tf32":  # fp32 weights and activations; TF32 matmuls and convs
            devices.set_tf32(device, "tf32")
        # fp16 gradients underflow without scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type) if self.name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name in ("fp32", "tf32"):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=devices.DTYPES[self.name])

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimizer step; with the scaler, steps with inf/NaN gradients are skipped."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def adamw(
    params: Iterable[torch.nn.Parameter], device: torch.device, lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW; on CUDA the fused kernel (one launch for all parameters instead of several per tensor)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda")
