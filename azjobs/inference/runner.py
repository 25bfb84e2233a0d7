"""The inference server's forward passes: one batch buffer, and the fastest way to run the network here.

The server decodes requests straight into `NetRunner.planes` (pinned host memory on CUDA, so the
copy to the GPU is asynchronous) and calls `forward(n)`. The network runs with its batch norms
folded into the convolutions before them (inference only: a fifth less work), held in its serving
precision: weights are cast once, when they are loaded, and the uint8 planes become that dtype in one
step on the device. The precision comes from `azjobs.net.device`: on CUDA by the runner's own device's
compute capability (bf16 from 8.0, fp16 below; fp32 with TF32 off, or tf32, on request); on CPU by
timing fp32 and bf16, each with and without channels_last, at the server's batch size. Optionally, on
CUDA, every batch is padded to a few fixed sizes (powers of two up to the batch size) that run as CUDA
graphs captured on a side stream of the runner's device into one shared memory pool, or through
`torch.compile` with every size compiled at start. The choice and its timings are logged.
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

from azjobs.errors import AzjobsError
from azjobs.net import device as devices
from azjobs.net.model import PolicyValueNet
from azjobs.net.weights import load_into, read_metadata, regrown

PRECISIONS = devices.PRECISIONS
LAYOUTS = ("auto", "on", "off")
MIN_BUCKET = 8  # smallest fixed batch size for CUDA graphs / torch.compile
TIMING_RUNS = 5  # timed forward passes per candidate when choosing (after 2 warm-up passes)
WARMUP_PASSES = 2  # passes per fixed size before capture (cuDNN picks its kernels, compile builds its code)


@dataclass(frozen=True)
class RunnerOptions:
    """How gpu-serve runs the network; "auto" measures at start."""

    precision: str = "auto"  # auto | fp32 (TF32 off) | tf32 | bf16 | fp16 (fp16 on CUDA only)
    channels_last: str = "auto"  # auto | on | off
    cuda_graphs: bool = False  # CUDA: replay captured graphs for fixed batch sizes
    compile: bool = False  # CUDA: torch.compile the network for fixed batch sizes


@dataclass(frozen=True)
class Choice:
    precision: str  # fp32 | tf32 | bf16 | fp16
    channels_last: bool
    timings_ms: dict[str, float] = field(default_factory=dict)  # candidate -> ms per batch, when measured
    tf32: bool = False  # TF32 tensor cores used for fp32 work (CUDA, capability >= 8.0, precision tf32)

    def describe(self) -> str:
        return self.precision + ("+channels_last" if self.channels_last else "")

    @property
    def dtype(self) -> torch.dtype:
        return devices.DTYPES[self.precision]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


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
            norm = layers[0] if layers else None
            if isinstance(layer, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                layer = fuse_conv_bn_eval(layer, norm)
                layers.pop(0)
            kept.append(layer)
        sequence._modules.clear()
        for i, layer in enumerate(kept):
            sequence.add_module(str(i), layer)
    return folded


def buckets(batch_size: int, max_batch: int) -> list[int]:
    """The fixed batch sizes graphs and compile are built for: powers of two from MIN_BUCKET below the
    batch size, then the batch size itself (a full batch is not padded). Only a single request bigger
    than a batch (up to `max_batch`) goes past them; it runs eagerly."""
    top = max(MIN_BUCKET, min(batch_size, max_batch))
    sizes = [MIN_BUCKET]
    while sizes[-1] * 2 < top:
        sizes.append(sizes[-1] * 2)
    return sizes if sizes[-1] == top else [*sizes, top]


Network = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # planes -> (logits, values)


def _prepared(model: nn.Module, choice: Choice, device: torch.device) -> nn.Module:
    # torch's overloads of Module.to omit memory_format, which Module.to documents and takes.
    return model.to(device=device, dtype=choice.dtype, memory_format=choice.memory_format)  # type: ignore[call-overload]


class NetRunner:
    """Runs `model` on the first n rows of `planes  # [max_batch, C, H, W] uint8`; the options are
    chosen (when "auto") by timing batches of `batch_size`."""

    def __init__(
        self,
        model: PolicyValueNet,
        device: str | torch.device,
        batch_size: int,
        max_batch: int,
        options: RunnerOptions = RunnerOptions(),
        *,
        version: int = 0,
        slots: int = 1,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.device = devices.resolve(device)
        self.cuda = self.device.type == "cuda"
        self.source = model.cpu().eval()  # what new weights load into; the runner runs a folded copy
        self.version = version
        self.options, self.log = options, log
        self.max_batch = max(max_batch, batch_size)
        self.buckets = buckets(batch_size, self.max_batch) if self._fixed_shapes else []
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        with self._on_device():  # also for pinning: it would otherwise open a context on GPU 0
            self._allocate(model.planes_shape, model.num_actions, slots)
            self.choice = self._choose(batch_size)
            self.model = _prepared(fold_batch_norms(self.source), self.choice, self.device)
            self._compiled = self._compile() if self._fixed_shapes and options.compile else None
            self._build_fixed_shapes(log)
        self.asynchronous = self.cuda  # `launch` returns while the GPU runs; `outputs` waits for it
        if self.cuda:
            self._done = torch.cuda.Event(blocking=True)  # its synchronize() sleeps instead of spinning
        log(
            f"network on {devices.where(self.device)}: {self.choice.describe()}"
            + (f", TF32 {'on' if self.choice.tf32 else 'off'}" if self.cuda else "")
            + (f" (chosen by timing {self._timings_text()})" if self.choice.timings_ms else "")
            + (", CUDA graphs" if self._graphs else "")
            + (", torch.compile" if self._compiled else "")
            + (f" for batch sizes {', '.join(map(str, self.buckets))}" if self.buckets else "")
            + (
                " (--cuda-graphs and --compile apply on CUDA only)"
                if not self.cuda and (options.cuda_graphs or options.compile)
                else ""
            )
        )

    def _allocate(self, planes_shape: tuple[int, int, int], num_actions: int, slots: int) -> None:
        """Host buffers, one set per slot; on CUDA pinned, so copies to and from the GPU run asynchronously."""
        pin = self.cuda
        self._planes = [
            torch.empty((self.max_batch, *planes_shape), dtype=torch.uint8, pin_memory=pin) for _ in range(slots)
        ]
        # [max_batch, C, H, W] each: the server decodes the next batch into one while another runs.
        self.buffers = [planes.numpy() for planes in self._planes]
        self.planes = self.buffers[0]
        self._logits = [
            torch.empty((self.max_batch, num_actions), dtype=torch.float32, pin_memory=pin) for _ in range(slots)
        ]
        self._values = [torch.empty(self.max_batch, dtype=torch.float32, pin_memory=pin) for _ in range(slots)]

    @property
    def _fixed_shapes(self) -> bool:
        return self.cuda and (self.options.cuda_graphs or self.options.compile)

    def _on_device(self) -> contextlib.AbstractContextManager:
        """The runner's GPU made current: streams, captures and compiled code then belong to it, not GPU 0."""
        return torch.cuda.device(self.device) if self.cuda else contextlib.nullcontext()

    def _timings_text(self) -> str:
        return ", ".join(f"{name} {ms:.2f} ms" for name, ms in self.choice.timings_ms.items())

    def load(self, data: bytes, version: int) -> None:
        """Swap in other weights of the same architecture; they are cast to the serving precision and
        copied into the same tensors, so captured graphs and compiled code stay valid. Weights of another
        size (the run's network grew) get a network of their own, its fixed sizes built again."""
        other = regrown(self.source, read_metadata(data))
        if other is not None:
            self._rebuild(other, data)
        else:
            load_into(self.source, data)
            with self._on_device(), torch.no_grad():
                self.model.load_state_dict(fold_batch_norms(self.source).state_dict())
        self.version = version

    def _rebuild(self, source: PolicyValueNet, data: bytes) -> None:
        """Serve `source` with `data` loaded: in the precision and layout chosen at start, with its own
        compiled code and graphs (the pass in flight finishes first: its graph is about to go)."""
        load_into(source, data)
        with self._on_device():
            if self.cuda:
                torch.cuda.synchronize(self.device)
            self._graphs.clear()
            self.source = source
            self.model = _prepared(fold_batch_norms(source), self.choice, self.device)
            self._compiled = self._compile() if self._fixed_shapes and self.options.compile else None
            self._build_fixed_shapes(self.log)
        self.log(f"network is now {source.blocks} blocks x {source.channels} channels")

    def forward(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(logits [n, A], values [n]) float32 of buffers[slot][:n]; views of the slot's output buffers,
        valid until its next forward. On CUDA it waits on an event (sleeping, the GIL released)."""
        self.launch(n, slot)
        return self.outputs(n, slot)

    def launch(self, n: int, slot: int = 0) -> None:
        """Start the pass over buffers[slot][:n]: on CUDA queued on the GPU (`outputs` waits for it), on the
        CPU run here."""
        planes, out_logits, out_values = self._planes[slot], self._logits[slot], self._values[slot]
        if not self.cuda:
            with torch.inference_mode():
                logits, values = self._run(self.model, planes[:n])
                out_logits[:n].copy_(logits)
                out_values[:n].copy_(values)
            return
        with self._on_device():
            if self._graphs and n <= self.buckets[-1]:
                self._replay(n, slot)
            else:
                with torch.inference_mode():
                    size = self._bucket(n)
                    logits, values = self._forward_fn(size)(planes[:size])
                    out_logits[:n].copy_(logits[:n], non_blocking=True)
                    out_values[:n].copy_(values[:n], non_blocking=True)
            self._done.record()

    def outputs(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The outputs of the pass launched on slot: (logits [n, A], values [n]), once it is done."""
        if self.cuda:
            self._done.synchronize()
        return self._logits[slot].numpy()[:n], self._values[slot].numpy()[:n]

    def _bucket(self, n: int) -> int:
        """The fixed size a batch of n is padded to; n itself past the largest (or without fixed sizes)."""
        return next((size for size in self.buckets if size >= n), n)

    def _forward_fn(self, size: int) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        compiled = self._compiled
        if compiled is not None and size in self.buckets:
            return lambda planes: self._run(compiled, planes)
        return lambda planes: self._run(self.model, planes)

    def _run(self, model: Network, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 planes (host or device) through `model`, converted once, to the serving dtype and layout."""
        x = planes.to(self.device, non_blocking=True)  # bytes cross to the GPU: 4x less than floats
        x = x.to(dtype=self.choice.dtype, memory_format=self.choice.memory_format)
        logits, values = model(x)
        return logits.float(), values.float()

    def _compile(self) -> Network:
        """torch.compile for the fixed sizes, each specialised (dynamic=False) and all built at start."""
        require_compile()
        import torch._dynamo

        # One specialisation per fixed size, deliberately: past the recompile limit (8 by default) dynamo
        # would silently run the largest sizes eagerly.
        limit = len(self.buckets) + 2
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
        return torch.compile(self.model, dynamic=False)

    def _build_fixed_shapes(self, log: Callable[[str], None]) -> None:
        """Warm every fixed size (compile builds it now, not mid-serving) and capture its graph."""
        if not self.buckets:
            return
        started = time.perf_counter()
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN's timed kernel choice pays off
        # Largest first: the smaller captures then reuse the shared pool's blocks.
        order = sorted(self.buckets, reverse=True)
        stream, pool = torch.cuda.Stream(self.device), None
        if self.options.cuda_graphs:
            pool = torch.cuda.graph_pool_handle()
        for size in order:
            static_in = torch.zeros((size, *self.source.planes_shape), dtype=torch.uint8, device=self.device)
            run = self._forward_fn(size)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(WARMUP_PASSES):
                    run(static_in)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            if pool is not None:
                graph = torch.cuda.CUDAGraph()
                with torch.inference_mode(), torch.cuda.graph(graph, pool=pool, stream=stream):
                    static_logits, static_values = run(static_in)
                self._graphs[size] = (graph, static_in, static_logits, static_values)
        torch.cuda.synchronize(self.device)
        log(f"built {len(order)} fixed batch sizes in {time.perf_counter() - started:.1f} s")

    def _replay(self, n: int, slot: int) -> None:
        graph, static_in, static_logits, static_values = self._graphs[self._bucket(n)]
        static_in[:n].copy_(self._planes[slot][:n], non_blocking=True)  # rows beyond n: stale, ignored
        graph.replay()
        self._logits[slot][:n].copy_(static_logits[:n], non_blocking=True)
        self._values[slot][:n].copy_(static_values[:n], non_blocking=True)

    def _choose(self, batch: int) -> Choice:
        """The options as given, or the fastest of the candidates at `batch`, timed here."""
        precisions = devices.serving_candidates(
            self.options.precision, self.device.type, devices.capability(self.device)
        )
        layouts = {"on": [True], "off": [False], "auto": [False, True]}[self.options.channels_last]
        candidates = [Choice(p, c) for p in precisions for c in layouts]
        if len(candidates) > 1:
            timings = {c.describe(): self._time(c, batch) for c in candidates}
            best = min(candidates, key=lambda c: timings[c.describe()])
            candidates = [Choice(best.precision, best.channels_last, timings)]
        chosen = candidates[0]
        tf32 = devices.set_tf32(self.device, chosen.precision)
        return Choice(chosen.precision, chosen.channels_last, chosen.timings_ms, tf32)

    def _time(self, choice: Choice, batch: int) -> float:
        """Median ms of a forward pass of `batch` random positions with `choice`."""
        devices.set_tf32(self.device, choice.precision)
        model = _prepared(fold_batch_norms(self.source), choice, self.device)
        planes = torch.randint(0, 2, (batch, *self.source.planes_shape), dtype=torch.uint8)
        times = []
        with torch.inference_mode():
            for i in range(2 + TIMING_RUNS):
                started = time.perf_counter()
                x = planes.to(self.device).to(dtype=choice.dtype, memory_format=choice.memory_format)
                logits, _ = model(x)
                logits.float().cpu()  # waits for the GPU
                if i >= 2:
                    times.append(1000 * (time.perf_counter() - started))
        return float(np.median(times))


def require_compile() -> None:
    """AzjobsError, at start rather than mid-serving, when torch.compile cannot build GPU code here."""
    if not _has_triton():
        raise AzjobsError(
            "--compile needs Triton for this GPU (torch.utils._triton.has_triton() is False): "
            "pip install the triton that matches torch, or serve without --compile"
        )


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton
    except ImportError:  # a torch without the helper: look for the package itself
        import importlib.util

        return importlib.util.find_spec("triton") is not None
    return bool(has_triton())


class NullRunner:
    """The network's stand-in for `azjobs bench transport`: answers zeros, so only transport costs; with
    `forward_s`, each pass takes that long and, like a pass on a GPU, runs while the CPU does other work
    (`launch` returns at once, `outputs` sleeps until it is over)."""

    def __init__(
        self,
        planes_shape: tuple[int, int, int],
        num_actions: int,
        max_batch: int,
        *,
        slots: int = 1,
        forward_s: float = 0.0,
    ) -> None:
        self.device = torch.device("cpu")
        self.version = 0
        self.choice = Choice("none", False)
        self.forward_s = forward_s
        self.asynchronous = forward_s > 0
        self.buffers = [np.zeros((max_batch, *planes_shape), np.uint8) for _ in range(slots)]
        self.planes = self.buffers[0]
        self._logits = np.zeros((max_batch, num_actions), np.float32)  # read only: one set serves every slot
        self._values = np.zeros(max_batch, np.float32)
        self._ends = [0.0] * slots  # when each slot's pass is over (time.perf_counter)

    def load(self, data: bytes, version: int) -> None:
        self.version = version

    def forward(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        self.launch(n, slot)
        return self.outputs(n, slot)

    def launch(self, n: int, slot: int = 0) -> None:
        self._ends[slot] = time.perf_counter() + self.forward_s

    def outputs(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        left = self._ends[slot] - time.perf_counter()
        if left > 0:
            time.sleep(left)
        return self._logits[:n], self._values[:n]
