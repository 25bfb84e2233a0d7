"""The inference server's forward passes: one batch buffer, and the fastest way to run the network here.

The server decodes requests straight into `NetRunner.planes` (pinned host memory on CUDA, so the
copy to the GPU is asynchronous) and calls `forward(n)`. The network runs with its batch norms
folded into the convolutions before them (inference only: a fifth less work). Precision and memory layout are chosen at
start: on CPU by timing fp32 and bf16 autocast, each with and without channels_last, at the
server's batch size (bf16 pays only on CPUs with bf16 instructions); on CUDA mixed precision (bf16
where supported, else fp16) with channels_last timed. Optionally, on CUDA, every batch is padded to
a few fixed sizes that run as captured CUDA graphs or through `torch.compile`, which removes the
per-layer launch cost that dominates small networks. The choice and its timings are logged.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from azjobs.net.model import PolicyValueNet
from azjobs.net.weights import load_into

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LAYOUTS = ("auto", "on", "off")
MIN_BUCKET = 8  # smallest fixed batch size for CUDA graphs / torch.compile
TIMING_RUNS = 5  # timed forward passes per candidate when choosing (after 2 warm-up passes)


@dataclass(frozen=True)
class RunnerOptions:
    """How gpu-serve runs the network; "auto" measures at start."""

    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast dtype; fp16 only on CUDA)
    channels_last: str = "auto"  # auto | on | off
    cuda_graphs: bool = False  # CUDA: replay captured graphs for fixed batch sizes
    compile: bool = False  # CUDA: torch.compile the network for fixed batch sizes


@dataclass(frozen=True)
class Choice:
    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    timings_ms: dict[str, float] = field(default_factory=dict)  # candidate -> ms per batch, when measured

    def describe(self) -> str:
        return self.precision + ("+channels_last" if self.channels_last else "")


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    # No cache of cast weights: each weight is used once per pass anyway, and a CUDA graph must not
    # capture casts whose results the cache frees when the context ends.
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def fold_batch_norms(model: PolicyValueNet) -> PolicyValueNet:
    """A copy of `model` (in eval mode) in which each Conv2d followed by a BatchNorm2d in a Sequential
    is one convolution with a bias: the same function, one layer less each time."""
    folded = copy.deepcopy(model).eval()
    for sequence in folded.modules():
        if not isinstance(sequence, nn.Sequential):
            continue
        layers, kept = list(sequence), []
        while layers:
            layer = layers.pop(0)
            if isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
                layer = fuse_conv_bn_eval(layer, layers.pop(0))
            kept.append(layer)
        sequence._modules.clear()
        for i, layer in enumerate(kept):
            sequence.add_module(str(i), layer)
    return folded


def _buckets(max_batch: int) -> list[int]:
    sizes = [MIN_BUCKET]
    while sizes[-1] < max_batch:
        sizes.append(sizes[-1] * 2)
    return sizes


class NetRunner:
    """Runs `model` on the first n rows of `planes  # [max_batch, C, H, W] uint8`; the options are
    chosen (when "auto") by timing batches of `batch_size`."""

    def __init__(self, model: PolicyValueNet, device: str | torch.device, batch_size: int, max_batch: int,
                 options: RunnerOptions = RunnerOptions(), *, version: int = 0,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.source = model.cpu().eval()  # what new weights load into; the runner runs a folded copy
        self.model = fold_batch_norms(self.source).to(self.device)
        self.version = version
        self.options = options
        c, h, w = model.planes_shape
        self.max_batch = max_batch if not self._fixed_shapes else _buckets(max_batch)[-1]
        # Host buffers; on CUDA pinned, so copies to and from the GPU run asynchronously.
        self._planes = torch.empty((self.max_batch, c, h, w), dtype=torch.uint8, pin_memory=self.cuda)
        self.planes = self._planes.numpy()  # [max_batch, C, H, W]: the server decodes requests into it
        self._logits = torch.empty((self.max_batch, model.num_actions), dtype=torch.float32, pin_memory=self.cuda)
        self._values = torch.empty(self.max_batch, dtype=torch.float32, pin_memory=self.cuda)
        self.choice = self._choose(batch_size)
        if self.choice.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._forward_fn = self._compiled() if self._fixed_shapes else self._eager
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        if self.cuda and options.cuda_graphs:
            self._capture_graphs()
        log(f"network on {self.device}: {self.choice.describe()}"
            + (f" (chosen by timing {self._timings_text()})" if self.choice.timings_ms else "")
            + (", CUDA graphs" if self._graphs else "") + (", torch.compile" if options.compile else ""))

    @property
    def _fixed_shapes(self) -> bool:
        return self.cuda and (self.options.cuda_graphs or self.options.compile)

    def _timings_text(self) -> str:
        return ", ".join(f"{name} {ms:.2f} ms" for name, ms in self.choice.timings_ms.items())

    def load(self, data: bytes, version: int) -> None:
        """Swap in other weights of the same architecture; they are copied into the same tensors,
        so captured graphs and compiled code stay valid."""
        load_into(self.source, data)
        self.model.load_state_dict(fold_batch_norms(self.source).state_dict())
        self.version = version

    def forward(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(logits [n, A], values [n]) float32 of planes[:n]; views valid until the next forward."""
        if self._graphs:
            self._replay(n)
        else:
            with torch.inference_mode():
                size = self._bucket(n) if self._fixed_shapes else n
                logits, values = self._forward_fn(self._planes[:size])
                self._logits[:n].copy_(logits[:n], non_blocking=self.cuda)
                self._values[:n].copy_(values[:n], non_blocking=self.cuda)
        if self.cuda:
            torch.cuda.current_stream(self.device).synchronize()
        return self._logits.numpy()[:n], self._values.numpy()[:n]

    def _bucket(self, n: int) -> int:
        return next(size for size in _buckets(self.max_batch) if size >= n)

    def _eager(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(self.model, planes, self.choice)

    def _run(self, model: torch.nn.Module, planes: torch.Tensor, choice: Choice) -> tuple[torch.Tensor, torch.Tensor]:
        x = planes.to(self.device, non_blocking=True).float()
        if choice.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.device, choice.precision):
            logits, values = model(x)
        return logits.float(), values.float()

    def _compiled(self) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        if not self.options.compile:
            return self._eager
        compiled = torch.compile(self.model, dynamic=False)
        return lambda planes: self._run(compiled, planes, self.choice)

    def _capture_graphs(self) -> None:
        """One CUDA graph per bucket size: device input, the whole forward, device outputs."""
        stream = torch.cuda.Stream(self.device)
        for size in _buckets(self.max_batch):
            static_in = torch.zeros((size, *self.model.planes_shape), dtype=torch.uint8, device=self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(2):  # warm-up outside the graph (cuDNN picks its kernels)
                    self._forward_fn(static_in)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                static_logits, static_values = self._forward_fn(static_in)
            self._graphs[size] = (graph, static_in, static_logits, static_values)

    def _replay(self, n: int) -> None:
        graph, static_in, static_logits, static_values = self._graphs[self._bucket(n)]
        static_in[:n].copy_(self._planes[:n], non_blocking=True)  # rows beyond n: stale, ignored
        graph.replay()
        self._logits[:n].copy_(static_logits[:n], non_blocking=True)
        self._values[:n].copy_(static_values[:n], non_blocking=True)

    def _choose(self, batch: int) -> Choice:
        """The options as given, or the fastest of the candidates at `batch`, timed here."""
        precisions = [self.options.precision]
        if self.options.precision == "auto":
            if self.cuda:
                precisions = ["bf16" if torch.cuda.is_bf16_supported() else "fp16"]
            else:
                precisions = ["fp32", "bf16"]
        layouts = {"on": [True], "off": [False], "auto": [False, True]}[self.options.channels_last]
        candidates = [Choice(p, c) for p in precisions for c in layouts]
        if len(candidates) == 1:
            return candidates[0]
        timings = {c.describe(): self._time(c, batch) for c in candidates}
        best = min(candidates, key=lambda c: timings[c.describe()])
        return Choice(best.precision, best.channels_last, timings)

    def _time(self, choice: Choice, batch: int) -> float:
        """Median ms of a forward pass of `batch` random positions with `choice`."""
        model = self.model.to(memory_format=torch.channels_last if choice.channels_last else torch.contiguous_format)
        planes = torch.randint(0, 2, (batch, *self.model.planes_shape), dtype=torch.uint8)
        times = []
        with torch.inference_mode():
            for i in range(2 + TIMING_RUNS):
                started = time.perf_counter()
                logits, _ = self._run(model, planes, choice)
                logits.cpu()  # waits for the GPU
                if i >= 2:
                    times.append(1000 * (time.perf_counter() - started))
        self.model = model.to(memory_format=torch.contiguous_format)
        return float(np.median(times))


class NullRunner:
    """The network's stand-in for `azjobs bench transport`: answers zeros, so only transport costs."""

    def __init__(self, planes_shape: tuple[int, int, int], num_actions: int, max_batch: int) -> None:
        self.device = torch.device("cpu")
        self.version = 0
        self.choice = Choice("none", False)
        self.planes = np.zeros((max_batch, *planes_shape), np.uint8)
        self._logits = np.zeros((max_batch, num_actions), np.float32)
        self._values = np.zeros(max_batch, np.float32)

    def load(self, data: bytes, version: int) -> None:
        self.version = version

    def forward(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self._logits[:n], self._values[:n]
