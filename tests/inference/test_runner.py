"""The server's forward passes: the batch buffer is what runs, each precision and layout agrees with the
plain network, weights swap in place (CUDA paths, marked `cuda`: on a GPU machine only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cuda_marks import cuda, gpus

from azjobs.errors import AzjobsError
from azjobs.games.connect4 import CONNECT4
from azjobs.inference.runner import NetRunner, NullRunner, RunnerOptions, _has_triton, buckets, fold_batch_norms
from azjobs.net import build_model, to_bytes
from azjobs.net import device as devices
from azjobs.settings import Settings

SETTINGS = Settings(game="connect4", net_blocks=1, net_channels=16)


def model(seed: int):  # type: ignore[no-untyped-def]
    """A network whose batch norms have learnt something (running statistics and affine terms)."""
    torch.manual_seed(seed)
    net = build_model(CONNECT4, SETTINGS).eval()
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.3, 0.3)
    return net


def test_folded_batch_norms_compute_the_same() -> None:
    net = model(1)
    folded = fold_batch_norms(net)
    assert not any(isinstance(layer, torch.nn.BatchNorm2d) for layer in folded.modules())
    assert any(isinstance(layer, torch.nn.BatchNorm2d) for layer in net.modules())  # a copy: the original stays
    x = planes(16, seed=5)
    for got, want in zip(reference(folded, x), reference(net, x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def planes(k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(k, *CONNECT4.planes_shape), dtype=np.uint8)


def reference(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        logits, values = net(torch.from_numpy(x))
    return logits.numpy(), values.numpy()


def run(runner: NetRunner, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    runner.planes[: len(x)] = x  # what the server does: decode requests into the buffer
    return runner.forward(len(x))


@pytest.mark.parametrize(
    ("precision", "channels_last", "tolerance"),
    [("fp32", "off", 1e-5), ("fp32", "on", 1e-4), ("bf16", "off", 0.05), ("bf16", "on", 0.05)],
)
def test_each_precision_and_layout_agrees_with_the_network(
    precision: str, channels_last: str, tolerance: float
) -> None:
    runner = NetRunner(model(1), "cpu", 32, 64, RunnerOptions(precision=precision, channels_last=channels_last))
    assert runner.choice.describe() == precision + ("+channels_last" if channels_last == "on" else "")
    x = planes(20, seed=2)
    for got, want in zip(run(runner, x), reference(model(1), x)):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


def test_the_choice_is_timed_and_logged() -> None:
    lines: list[str] = []
    runner = NetRunner(model(1), "cpu", 32, 64, RunnerOptions(precision="fp32"), log=lines.append)
    assert set(runner.choice.timings_ms) == {"fp32", "fp32+channels_last"}
    assert all(ms > 0 for ms in runner.choice.timings_ms.values())
    assert "chosen by timing" in lines[0] and runner.choice.describe() in lines[0]


def test_new_weights_are_loaded_in_place() -> None:
    runner = NetRunner(model(1), "cpu", 8, 8, RunnerOptions(precision="fp32", channels_last="on"), version=1)
    tensors = [p.data_ptr() for p in runner.model.parameters()]
    runner.load(to_bytes(model(2), {"version": 2}), version=2)
    assert runner.version == 2 and [p.data_ptr() for p in runner.model.parameters()] == tensors
    x = planes(5, seed=3)
    for got, want in zip(run(runner, x), reference(model(2), x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_null_runner_answers_zeros() -> None:
    runner = NullRunner(CONNECT4.planes_shape, CONNECT4.num_actions, 16)
    logits, values = runner.forward(5)
    assert logits.shape == (5, 7) and values.shape == (5,) and not logits.any() and not values.any()


def test_fixed_sizes_stop_at_the_batch_size() -> None:
    """No 4,096 bucket for a batch of 64; a full batch is not padded; within dynamo's recompile limit of 8."""
    assert buckets(64, 4096) == [8, 16, 32, 64]
    assert buckets(100, 4096) == [8, 16, 32, 64, 100]
    assert buckets(1024, 4096) == [8, 16, 32, 64, 128, 256, 512, 1024]
    assert buckets(3, 4096) == [8] and buckets(9, 9) == [8, 9]


def test_the_network_is_held_in_its_serving_precision() -> None:
    runner = NetRunner(model(1), "cpu", 8, 8, RunnerOptions(precision="bf16", channels_last="off"))
    assert {p.dtype for p in runner.model.parameters()} == {torch.bfloat16}
    tensors = [p.data_ptr() for p in runner.model.parameters()]
    runner.load(to_bytes(model(2), {"version": 2}), version=2)  # cast once, into the same tensors
    assert {p.dtype for p in runner.model.parameters()} == {torch.bfloat16}
    assert [p.data_ptr() for p in runner.model.parameters()] == tensors
    x = planes(5, seed=3)
    for got, want in zip(run(runner, x), reference(model(2), x)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)


def test_fp16_on_a_cpu_is_refused_with_the_fix() -> None:
    with pytest.raises(AzjobsError, match="fp16 runs on CUDA only"):
        NetRunner(model(1), "cpu", 8, 8, RunnerOptions(precision="fp16"))


# On a GPU machine: every precision and mode agrees with the CPU network, before and after a swap.
TOLERANCE = {"fp32": 1e-4, "tf32": 0.02, "bf16": 0.05, "fp16": 0.02}


def agrees_before_and_after_a_swap(
    runner: NetRunner, tolerance: float, sizes: tuple[int, ...] = (1, 7, 8, 9, 64, 100)
) -> None:
    for version, seed in ((1, 1), (2, 2)):  # the second after a weights swap: graphs see the new weights
        if version == 2:
            runner.load(to_bytes(model(2), {"version": 2}), version=2)
        for k in sizes:
            x = planes(k, seed=k)
            got = run(runner, x)
            if k > 1:  # an empty capture replays its warm-up: every row the same
                assert np.ptp(got[0], axis=0).any() and np.ptp(got[1]).any(), f"constant output at batch {k}"
            for answer, want in zip(got, reference(model(seed), x)):
                np.testing.assert_allclose(answer, want, rtol=tolerance, atol=tolerance)


@cuda
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
@pytest.mark.parametrize(
    "options",
    [
        RunnerOptions(channels_last="off"),
        RunnerOptions(cuda_graphs=True),
        RunnerOptions(cuda_graphs=True, channels_last="on"),
    ],
)
def test_cuda_batches_of_any_size_agree_with_the_network(options: RunnerOptions, precision: str) -> None:
    options = RunnerOptions(precision, options.channels_last, options.cuda_graphs)
    runner = NetRunner(model(1), "cuda", 64, 100, options)
    assert runner.planes.shape[0] >= 100 and runner.choice.precision == precision
    assert {p.dtype for p in runner.model.parameters()} == {devices.DTYPES[precision]}
    if options.cuda_graphs:
        assert sorted(runner._graphs) == [8, 16, 32, 64]  # 100 (one big request) runs eagerly
    agrees_before_and_after_a_swap(runner, TOLERANCE[precision])


@cuda
def test_auto_precision_is_the_devices_own_and_logged() -> None:
    lines: list[str] = []
    runner = NetRunner(model(1), "cuda", 64, 64, RunnerOptions(channels_last="off"), log=lines.append)
    device = torch.device("cuda", torch.cuda.current_device())
    assert runner.device == device
    assert runner.choice.precision == devices.auto_cuda_precision(devices.capability(device))
    assert torch.cuda.get_device_name(device) in lines[0] and "TF32 off" in lines[0]


@cuda
def test_graphs_share_one_memory_pool() -> None:
    runner = NetRunner(model(1), "cuda", 64, 64, RunnerOptions(cuda_graphs=True, channels_last="off"))
    pools = {graph.pool() for graph, *_ in runner._graphs.values()}
    assert len(runner._graphs) == 4 and len(pools) == 1


@gpus(2)
@pytest.mark.parametrize("options", [RunnerOptions(cuda_graphs=True), RunnerOptions(channels_last="off")])
def test_graphs_on_a_second_gpu_capture_the_forward_pass(options: RunnerOptions) -> None:
    """cuda:1 while cuda:0 is current: the capture must happen on cuda:1's own stream."""
    index = torch.cuda.device_count() - 1
    assert torch.cuda.current_device() != index
    runner = NetRunner(model(1), f"cuda:{index}", 64, 100, options)
    assert {p.device for p in runner.model.parameters()} == {torch.device("cuda", index)}
    agrees_before_and_after_a_swap(runner, TOLERANCE[runner.choice.precision])
    assert torch.cuda.current_device() != index  # the runner made its device current only while it ran


@cuda
@pytest.mark.skipif(not _has_triton(), reason="torch.compile needs Triton, not installed here")
def test_compile_builds_every_size_at_start_and_agrees() -> None:
    lines: list[str] = []
    runner = NetRunner(model(1), "cuda", 64, 100, RunnerOptions(compile=True, channels_last="off"), log=lines.append)
    assert any("built 4 fixed batch sizes" in line for line in lines) and "torch.compile" in lines[-1]
    agrees_before_and_after_a_swap(runner, TOLERANCE[runner.choice.precision])


@cuda
@pytest.mark.skipif(_has_triton(), reason="checks the message of a GPU machine without Triton")
def test_compile_without_triton_fails_at_start() -> None:
    with pytest.raises(AzjobsError, match="--compile needs Triton"):
        NetRunner(model(1), "cuda", 64, 64, RunnerOptions(compile=True))
