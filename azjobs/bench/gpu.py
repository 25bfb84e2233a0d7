"""`azjobs bench gpu`: proves a GPU machine. On every visible CUDA device, each serving variant (precision x
eager / CUDA graphs / graphs + channels_last / torch.compile) answers odd batch sizes as the CPU in fp32
does, before and after a weights swap, with no constant output; then positions/s at large batches and a
trainer's steps/s with mixed precision. One verdict line per variant, one JSON line last.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from azjobs.bench import WINDOWS, emit, median, say
from azjobs.bench.net import forward_rate
from azjobs.errors import AzjobsError
from azjobs.games import get_game
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net import device as devices
from azjobs.net.model import PolicyValueNet, build_model
from azjobs.net.weights import model_from_bytes, to_bytes
from azjobs.settings import Settings
from azjobs.train.learner import LOSS_NAMES, train_step
from azjobs.train.precision import MixedPrecision, adamw

CHECK_SIZES = (1, 7, 64, 100, 257, 1000)  # odd sizes on purpose: padding to a bucket must not leak
TIMED_SIZES = (256, 512, 1024)
PRECISION_ORDER = ("fp32", "tf32", "bf16", "fp16")
# Largest |GPU - CPU fp32| over logits and values, relative to the largest |CPU fp32| output (at least 1).
TOLERANCES = {
    "fp32": 1e-4,  # TF32 off: only the order of summation differs from the CPU
    "tf32": 2e-2,  # 10-bit mantissa inside convolutions and matmuls, fp32 elsewhere
    "fp16": 2e-2,  # 10-bit mantissa throughout, fp32 accumulation
    "bf16": 6e-2,  # 7-bit mantissa throughout
}
MODES = {  # mode -> RunnerOptions (its precision set per variant)
    "eager": RunnerOptions(channels_last="off"),
    "graphs": RunnerOptions(channels_last="off", cuda_graphs=True),
    "graphs+channels_last": RunnerOptions(channels_last="on", cuda_graphs=True),
    "compile": RunnerOptions(channels_last="off", compile=True),
}


@dataclass(frozen=True)
class Variant:
    precision: str
    mode: str

    @property
    def name(self) -> str:
        return f"{self.precision} {self.mode}"

    def options(self) -> RunnerOptions:
        return replace(MODES[self.mode], precision=self.precision)


@dataclass
class Verdict:
    """What one variant did on one device; `level` is ok, FAIL or skip."""

    device: str
    variant: str
    level: str = "ok"
    note: str = ""
    max_error: float = 0.0
    tolerance: float = 0.0
    positions_per_sec: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        rates = ", ".join(f"{k}: {v:,.0f}/s" for k, v in self.positions_per_sec.items())
        text = (
            f"{self.level:<4}  {self.device:<7} {self.variant:<26} error {self.max_error:.1e} (<= {self.tolerance:.0e})"
        )
        return text + (f"  {rates}" if rates else "") + (f"  {self.note}" if self.note else "")


def variants(compile_all: bool, auto_precision: str) -> list[Variant]:
    """Every precision in every mode; torch.compile only in the device's own precision unless asked (each
    precision compiles every batch size again: minutes)."""
    found = [Variant(p, m) for p in PRECISION_ORDER for m in MODES if m != "compile"]
    compiled = PRECISION_ORDER if compile_all else (auto_precision,)
    return found + [Variant(p, "compile") for p in compiled]


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def constant(logits: np.ndarray, values: np.ndarray) -> bool:
    """All rows the same: what a graph captured empty (replaying its warm-up) answers."""
    return len(values) > 1 and not (np.ptp(logits, axis=0).any() or np.ptp(values).any())


def learnt_like(model: PolicyValueNet, seed: int) -> PolicyValueNet:
    """Random batch-norm statistics and affine terms, so that folding them is tested as after training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                assert layer.running_mean is not None and layer.running_var is not None  # tracked by default
                layer.running_mean.uniform_(-0.5, 0.5, generator=generator)
                layer.running_var.uniform_(0.5, 2.0, generator=generator)
                layer.weight.uniform_(0.5, 1.5, generator=generator)
                layer.bias.uniform_(-0.3, 0.3, generator=generator)
    return model.eval()


@dataclass(frozen=True)
class Reference:
    """CPU fp32 answers of two weight sets on the check batches."""

    planes: dict[int, np.ndarray]  # size -> [size, C, H, W] uint8
    answers: list[dict[int, tuple[np.ndarray, np.ndarray]]]  # per weight set: size -> (logits, values)
    weights: list[bytes]


def reference(settings: Settings) -> Reference:
    game = get_game(settings.game)
    rng = np.random.default_rng(settings.seed)
    planes = {k: rng.integers(0, 2, size=(k, *game.planes_shape), dtype=np.uint8) for k in CHECK_SIZES}
    models = []
    for i in range(2):
        torch.manual_seed(settings.seed + i)
        models.append(learnt_like(build_model(game, settings), settings.seed + i))
    answers = []
    with torch.inference_mode():
        for net in models:
            answers.append({k: tuple(t.numpy() for t in net(torch.from_numpy(x))) for k, x in planes.items()})
    return Reference(planes, answers, [to_bytes(m, {"version": str(i + 1)}) for i, m in enumerate(models)])


def check(runner: NetRunner, ref: Reference, tolerance: float) -> tuple[float, str]:
    """The largest relative error over both weight sets and every check size, and what went wrong."""
    worst, problem = 0.0, ""
    for index in range(2):
        if index:
            runner.load(ref.weights[1], version=2)
        for size, planes in ref.planes.items():
            runner.planes[:size] = planes
            logits, values = runner.forward(size)
            want_logits, want_values = ref.answers[index][size]
            error = max(relative_error(logits, want_logits), relative_error(values, want_values))
            worst = max(worst, error)
            when = "after the weights swap" if index else "before the weights swap"
            if constant(logits, values) and not problem:
                problem = f"constant output at batch {size} {when}"
            elif error > tolerance and not problem:
                problem = f"error {error:.1e} at batch {size} {when}"
    return worst, problem


def time_batches(runner: NetRunner, seconds: float) -> dict[str, float]:
    """Positions per second of back-to-back forward passes at each timed size: the median of WINDOWS windows."""
    runner.planes[:] = np.random.default_rng(0).integers(0, 2, size=runner.planes.shape, dtype=np.uint8)
    window_s = seconds / len(TIMED_SIZES) / WINDOWS
    rates = {}
    for size in TIMED_SIZES:
        runner.forward(size)
        rates[str(size)] = median([forward_rate(runner, size, window_s) for _ in range(WINDOWS)], 0)
    return rates


def run_variant(device: torch.device, variant: Variant, game: str, ref: Reference, seconds: float) -> Verdict:
    verdict = Verdict(str(device), variant.name, tolerance=TOLERANCES[variant.precision])
    if variant.mode == "compile":
        import torch._dynamo

        torch._dynamo.reset()  # each runner compiles its own sizes, within dynamo's recompile limit
    try:
        model, _ = model_from_bytes(get_game(game), ref.weights[0])
        runner = NetRunner(
            model, device, max(TIMED_SIZES), max(*TIMED_SIZES, *CHECK_SIZES), variant.options(), version=1
        )
        verdict.max_error, problem = check(runner, ref, verdict.tolerance)
        if problem:
            verdict.level, verdict.note = "FAIL", problem
        verdict.positions_per_sec = time_batches(runner, seconds)
    except AzjobsError as e:  # e.g. --compile without Triton: the variant cannot run on this machine
        verdict.level, verdict.note = "skip", str(e)
    except RuntimeError as e:  # a kernel this card lacks (bf16 before capability 8.0 on old drivers, ...)
        verdict.level, verdict.note = "FAIL", f"{type(e).__name__}: {str(e).splitlines()[0]}"
    return verdict


def trainer_steps_per_s(device: torch.device, settings: Settings, seconds: float) -> dict[str, Any]:
    """Training steps per second of the run's network and batch size with the trainer's mixed precision."""
    game = get_game(settings.game)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        torch.manual_seed(settings.seed)
        model = build_model(game, settings).to(device)
        precision = MixedPrecision(device)
        optimizer = adamw(model.parameters(), device, settings.learning_rate, settings.weight_decay)
        rng = np.random.default_rng(0)
        b = settings.batch_size
        batch = (
            rng.integers(0, 2, size=(b, *game.planes_shape), dtype=np.uint8),
            rng.dirichlet(np.ones(game.num_actions), size=b).astype(np.float32),
            rng.uniform(-1, 1, size=b).astype(np.float32),
        )
        torch.backends.cudnn.benchmark = device.type == "cuda"  # as the trainer: one batch shape throughout
        for _ in range(3):
            train_step(model, optimizer, batch, device, precision)
        steps, started = 0, time.perf_counter()
        total = torch.zeros(len(LOSS_NAMES), device=device)
        while steps < 5 or time.perf_counter() - started < seconds:
            total += train_step(model, optimizer, batch, device, precision)
            steps += 1
        finite = bool(torch.isfinite(total).all())  # waits for the GPU
        rate = steps / (time.perf_counter() - started)
    return {"precision": precision.name, "batch_size": b, "steps_per_s": round(rate, 1), "finite_losses": finite}


def run(settings: Settings, seconds: float, *, compile_all: bool = False, compile: bool = True) -> dict[str, Any]:
    """The whole proof; the result's `ok` is False when any variant failed."""
    if not torch.cuda.is_available():
        say(
            f"bench gpu: no CUDA device is visible here (torch {torch.__version__}, CUDA build "
            f"{torch.version.cuda or 'none'}): nothing to check on this machine"
        )
        return emit({"bench": "gpu", "cuda": False, "devices": [], "variants": [], "ok": True})
    ref = reference(settings)
    found: list[dict[str, Any]] = []
    verdicts: list[Verdict] = []
    for index in range(torch.cuda.device_count()):
        device = torch.device("cuda", index)
        cap = devices.capability(device) or (0, 0)
        auto = devices.auto_cuda_precision(cap)
        say(
            f"bench gpu: {devices.where(device)}, auto precision {auto}; {settings.game} "
            f"{settings.net_blocks}x{settings.net_channels}"
        )
        chosen = [v for v in variants(compile_all, auto) if compile or v.mode != "compile"]
        for variant in chosen:
            verdicts.append(run_variant(device, variant, settings.game, ref, seconds))
            say(verdicts[-1].line())
            torch.cuda.empty_cache()  # the variant's graphs and buffers are gone: give their memory back
        training = trainer_steps_per_s(device, settings, seconds)
        say(
            f"      {device} trainer: {training['steps_per_s']} steps/s of {training['batch_size']} "
            f"in {training['precision']}"
        )
        found.append({**devices.facts(device), "auto_precision": auto, "trainer": training})
    ok = all(v.level != "FAIL" for v in verdicts) and all(d["trainer"]["finite_losses"] for d in found)
    say(f"bench gpu: {'every variant agrees with the CPU' if ok else 'FAILED: see the lines marked FAIL'}")
    return emit(
        {
            "bench": "gpu",
            "cuda": True,
            "game": settings.game,
            "network": f"{settings.net_blocks}x{settings.net_channels}",
            "devices": found,
            "variants": [asdict(v) for v in verdicts],
            "tolerances": TOLERANCES,
            "ok": ok,
        }
    )
