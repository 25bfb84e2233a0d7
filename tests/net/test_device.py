"""The one choice of device and precision: by compute capability, asked of the device in use."""

from __future__ import annotations

import pytest
import torch
from cuda_marks import cuda, gpus

from azjobs.errors import AzjobsError
from azjobs.net import device as devices
from azjobs.train.precision import MixedPrecision


@pytest.mark.parametrize(
    ("cap", "expected"),
    [((6, 1), "fp16"), ((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((8, 6), "bf16"), ((9, 0), "bf16")],
)
def test_cuda_precision_follows_compute_capability(cap: tuple[int, int], expected: str) -> None:
    """T4 (7.5), V100 (7.0), GTX 10xx (6.1) emulate bf16: fp16 there; Ampere (8.x) and later: bf16."""
    assert devices.auto_cuda_precision(cap) == expected
    assert devices.serving_candidates("auto", "cuda", cap) == [expected]
    assert devices.training_precision("auto", "cuda", cap) == expected


def test_requests_are_kept_and_the_cpu_times_fp32_against_bf16() -> None:
    assert devices.serving_candidates("auto", "cpu", None) == ["fp32", "bf16"]
    assert devices.training_precision("auto", "cpu", None) == "fp32"
    for precision in ("fp32", "tf32", "bf16", "fp16"):
        assert devices.serving_candidates(precision, "cuda", (7, 5)) == [precision]
        assert devices.training_precision(precision, "cuda", (8, 0)) == precision


def test_impossible_requests_name_the_fix() -> None:
    with pytest.raises(AzjobsError, match="fp16 runs on CUDA only"):
        devices.serving_candidates("fp16", "cpu", None)
    with pytest.raises(AzjobsError, match="unknown precision 'fp8'"):
        devices.training_precision("fp8", "cuda", (9, 0))
    with pytest.raises(AzjobsError, match="use cpu, cuda or cuda:N"):
        devices.resolve("gpu0")


def test_the_cpu_trains_in_fp32_without_a_scaler() -> None:
    mixed = MixedPrecision(torch.device("cpu"))
    assert mixed.name == "fp32" and mixed.scaler is None
    assert not devices.set_tf32(torch.device("cpu"), "tf32")  # no TF32 on a CPU, whatever is asked
    assert devices.facts(torch.device("cpu")) == {"cuda_device": "cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_a_missing_gpu_is_a_user_error() -> None:
    assert devices.resolve(None) == torch.device("cpu")
    with pytest.raises(AzjobsError, match="CUDA is not visible here"):
        devices.resolve("cuda:1")


@cuda
def test_the_device_is_explicit_and_asked_about_itself() -> None:
    count = torch.cuda.device_count()
    assert devices.resolve("cuda") == torch.device("cuda", torch.cuda.current_device())
    last = torch.device("cuda", count - 1)
    assert devices.capability(last) == torch.cuda.get_device_capability(count - 1)
    assert devices.facts(last)["cuda"] == torch.cuda.get_device_name(count - 1)
    with pytest.raises(AzjobsError, match=f"has {count} GPU"):
        devices.resolve(f"cuda:{count}")
    mixed = MixedPrecision(last)
    assert mixed.name == devices.auto_cuda_precision(devices.capability(last))
    assert (mixed.scaler is not None) == (mixed.name == "fp16")


@cuda
def test_fp32_turns_tf32_off_and_tf32_on() -> None:
    device = torch.device("cuda", 0)
    assert not devices.set_tf32(device, "fp32")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    on = devices.set_tf32(device, "tf32")
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert on == (devices.capability(device) >= devices.TF32_FROM)
    devices.set_tf32(device, "fp32")


@gpus(2)
def test_capability_is_that_of_the_device_asked() -> None:
    for index in range(torch.cuda.device_count()):
        assert devices.capability(torch.device("cuda", index)) == torch.cuda.get_device_capability(index)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_serve_on_a_missing_gpu_stops_before_waiting_for_the_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from azjobs.cli import main

    result = CliRunner().invoke(
        main,
        ["gpu-serve", "--run-dir", str(tmp_path / "r"), "--device", "cuda:1", "--redis-url", "redis://127.0.0.1:1/0"],
    )
    assert result.exit_code == 1 and "--device cuda:1: CUDA is not visible here" in result.output
