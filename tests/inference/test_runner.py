"""The server's forward passes: the batch buffer is what runs, each precision and layout agrees with the
plain network, weights swap in place (CUDA graphs: on a GPU machine only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from azjobs.games.connect4 import CONNECT4
from azjobs.inference.runner import NetRunner, NullRunner, RunnerOptions, fold_batch_norms
from azjobs.net import build_model, to_bytes
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


@pytest.mark.parametrize(("precision", "channels_last", "tolerance"),
                         [("fp32", "off", 1e-5), ("fp32", "on", 1e-4), ("bf16", "off", 0.05), ("bf16", "on", 0.05)])
def test_each_precision_and_layout_agrees_with_the_network(precision: str, channels_last: str,
                                                           tolerance: float) -> None:
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("options", [RunnerOptions(), RunnerOptions(cuda_graphs=True),
                                     RunnerOptions(cuda_graphs=True, channels_last="on")])
def test_cuda_batches_of_any_size_agree_with_the_network(options: RunnerOptions) -> None:
    runner = NetRunner(model(1), "cuda", 64, 100, options)
    assert runner.planes.shape[0] >= 100
    for version, seed in ((1, 1), (2, 2)):  # the second after a weights swap: graphs see the new weights
        if version == 2:
            runner.load(to_bytes(model(2), {"version": 2}), version=2)
        for k in (1, 7, 8, 9, 64, 100):
            x = planes(k, seed=k)
            for got, want in zip(run(runner, x), reference(model(seed), x)):
                np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)
