"""In-process evaluation: a network on one device behind the `evaluate(planes)` interface search uses."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np
import torch

from azjobs.net import device as devices
from azjobs.net.model import PolicyValueNet
from azjobs.net.weights import load_into, model_from_bytes, read_metadata, regrown, weights_version

if TYPE_CHECKING:
    from azjobs.games.base import Game


def default_device() -> str:
    """The kind of device `devices.resolve` picks when none is asked for ("cuda" or "cpu")."""
    return devices.resolve().type


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bf16 from compute capability 8.0 of this device, else fp16); fp32 on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    precision = devices.auto_cuda_precision(devices.capability(device) or (0, 0))
    return torch.autocast("cuda", dtype=devices.DTYPES[precision])


class LocalEvaluator:
    """Evaluates planes with a model held on `device`; `load` swaps in another weights version."""

    def __init__(self, model: PolicyValueNet, device: str | torch.device = "cpu", version: int = 0) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.version = version

    @classmethod
    def from_bytes(cls, game: Game, data: bytes, device: str | torch.device = "cpu") -> LocalEvaluator:
        model, meta = model_from_bytes(game, data)
        return cls(model, device, weights_version(meta))

    def load(self, data: bytes, version: int | None = None) -> None:
        """Swap in other weights of the same game (AzjobsError if they don't fit): into a network of their
        own size if they name another (the run's network grew)."""
        other = regrown(self.model, read_metadata(data))
        meta = load_into(self.model if other is None else other, data)
        self.model = self.model if other is None else other
        self.version = weights_version(meta, self.version) if version is None else version

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """planes `[K, C, H, W]` uint8 -> (logits `[K, A]` float32, values `[K]` float32), both writable."""
        if not planes.flags.writeable:  # torch wants to own writable memory (a view of a message is not)
            planes = planes.copy()
        x = torch.from_numpy(np.ascontiguousarray(planes)).to(self.device, non_blocking=True)
        with torch.inference_mode(), _autocast(self.device):
            logits, values = self.model(x)
        return logits.float().cpu().numpy(), values.float().cpu().numpy()

    __call__ = evaluate
