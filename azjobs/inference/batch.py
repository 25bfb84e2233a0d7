"""What gpu-serve's two threads share: the runner that owns the batch buffers, the batches passed between the
threads, and the figures of a heartbeat's window."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from azjobs.wire import Request


class Runner(Protocol):
    """What the server runs: `NetRunner`, or `NullRunner` when only transport is measured."""

    device: torch.device
    version: int
    buffers: list[np.ndarray]  # [max_batch, C, H, W] uint8 each: the batch buffers requests are decoded into

    def forward(self, n: int, slot: int) -> tuple[np.ndarray, np.ndarray]: ...

    def load(self, data: bytes, version: int) -> None: ...


class AsyncRunner(Runner, Protocol):
    """A runner whose pass runs while the CPU does other work (`asynchronous` true: NetRunner on CUDA, a
    NullRunner with a forward time): `launch` starts it, `outputs` waits for it; `forward` is both."""

    asynchronous: bool

    def launch(self, n: int, slot: int) -> None: ...

    def outputs(self, n: int, slot: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Batch:
    """Whole requests decoded into one slot's buffer; after the forward pass, its outputs."""

    slot: int
    requests: list[Request] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)  # the messages, given back if the batch never runs
    positions: int = 0
    version: int = -1  # weights version of the outputs
    logits: np.ndarray | None = None  # [positions, A], a view of the slot's output buffer
    values: np.ndarray | None = None  # [positions]


@dataclass
class Window:
    """The forward thread's figures since the last heartbeat, for its means and rates (the collector's are
    running totals, taken at the window's start)."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    positions: int = 0
    requests: int = 0
    forward_s: float = 0.0
    idle_s: float = 0.0  # the forward thread waiting for a collected batch
    send_s: float = 0.0
    collected: tuple[float, float, int] = (0.0, 0.0, 0)  # the collector's gather_s, queue_wait_s, stale then
