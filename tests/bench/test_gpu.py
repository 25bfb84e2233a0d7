"""`azjobs bench gpu`: its self-check catches constant or wrong answers (shown on the CPU with the
server's own runners), it says so and exits 0 without CUDA, and on a GPU machine every variant passes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from cuda_marks import cuda

from azjobs.bench import gpu
from azjobs.cli import main
from azjobs.games import get_game
from azjobs.inference.runner import NetRunner, NullRunner, RunnerOptions
from azjobs.net.weights import model_from_bytes
from azjobs.settings import Settings

SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8, batch_size=32)
GAME = get_game("tictactoe")


@pytest.fixture(scope="module")
def ref() -> gpu.Reference:
    return gpu.reference(SETTINGS)


def cpu_runner(ref: gpu.Reference) -> NetRunner:
    model, _ = model_from_bytes(GAME, ref.weights[0])
    return NetRunner(model, "cpu", 64, max(gpu.CHECK_SIZES), RunnerOptions(precision="fp32", channels_last="off"))


def test_a_faithful_runner_passes_the_check_in_fp32(ref: gpu.Reference) -> None:
    error, problem = gpu.check(cpu_runner(ref), ref, gpu.TOLERANCES["fp32"])
    assert problem == "" and error <= gpu.TOLERANCES["fp32"]


def test_constant_answers_are_caught(ref: gpu.Reference) -> None:
    null = NullRunner(GAME.planes_shape, GAME.num_actions, max(gpu.CHECK_SIZES))
    _, problem = gpu.check(null, ref, 1e9)  # within any tolerance of nothing, yet constant
    assert problem == "constant output at batch 7 before the weights swap"


def test_answers_of_other_weights_are_caught(ref: gpu.Reference) -> None:
    """Answers of other weights (what a stale capture replays) exceed even bf16's tolerance."""
    swapped = gpu.Reference(ref.planes, ref.answers[::-1], ref.weights)
    error, problem = gpu.check(cpu_runner(ref), swapped, gpu.TOLERANCES["bf16"])
    assert problem.startswith("error ") and problem.endswith("at batch 1 before the weights swap")
    assert error > gpu.TOLERANCES["bf16"]
    # A swap that changed nothing: right before it, wrong after it.
    unswapped = gpu.Reference(ref.planes, ref.answers, [ref.weights[0], ref.weights[0]])
    _, problem = gpu.check(cpu_runner(ref), unswapped, gpu.TOLERANCES["bf16"])
    assert problem.endswith("at batch 1 after the weights swap")


def test_the_weight_sets_differ_and_outputs_vary(ref: gpu.Reference) -> None:
    logits, values = ref.answers[0][1000]
    assert not gpu.constant(logits, values) and gpu.constant(np.zeros((3, 9)), np.zeros(3))
    assert gpu.relative_error(ref.answers[0][257][0], ref.answers[1][257][0]) > 0.06


def test_every_precision_and_mode_is_a_variant() -> None:
    names = [v.name for v in gpu.variants(compile_all=False, auto_precision="bf16")]
    assert len(names) == 13 and names[-1] == "bf16 compile" and "fp16 graphs+channels_last" in names
    assert len(gpu.variants(compile_all=True, auto_precision="bf16")) == 16
    assert set(gpu.TOLERANCES) == set(gpu.PRECISION_ORDER)


def test_the_trainer_rate_is_measured_where_it_runs() -> None:
    figures = gpu.trainer_steps_per_s(torch.device("cpu"), SETTINGS, seconds=0.2)
    assert figures["precision"] == "fp32" and figures["finite_losses"] and figures["steps_per_s"] > 0


def test_a_variant_is_checked_then_timed(ref: gpu.Reference) -> None:
    """The whole path of one variant, on the CPU (where graphs and compile do not apply)."""
    verdict = gpu.run_variant(torch.device("cpu"), gpu.Variant("fp32", "graphs"), "tictactoe", ref, seconds=0.3)
    assert verdict.level == "ok" and verdict.max_error <= verdict.tolerance == gpu.TOLERANCES["fp32"]
    assert set(verdict.positions_per_sec) == {"256", "512", "1024"} and min(verdict.positions_per_sec.values()) > 0
    assert verdict.line().startswith("ok    cpu     fp32 graphs")
    refused = gpu.run_variant(torch.device("cpu"), gpu.Variant("fp16", "eager"), "tictactoe", ref, seconds=0.3)
    assert refused.level == "skip" and "fp16 runs on CUDA only" in refused.note


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA says")
def test_without_cuda_it_says_so_and_exits_0() -> None:
    result = CliRunner().invoke(main, ["bench", "gpu"])
    assert result.exit_code == 0, result.output
    assert "no CUDA device is visible here" in result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures == {"bench": "gpu", "cuda": False, "devices": [], "variants": [], "ok": True}


@cuda
def test_every_variant_passes_on_every_gpu() -> None:
    result = CliRunner().invoke(main, ["bench", "gpu", "--game", "tictactoe", "--seconds", "1", "--no-compile"])
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0 and figures["ok"], result.stderr
    assert len(figures["devices"]) == torch.cuda.device_count()
    assert len(figures["variants"]) == 12 * torch.cuda.device_count()
    assert all(
        v["level"] == "ok" and set(v["positions_per_sec"]) == {"256", "512", "1024"} for v in figures["variants"]
    )
    assert all(d["trainer"]["finite_losses"] and d["trainer"]["steps_per_s"] > 0 for d in figures["devices"])
