"""Growing the network: the bigger one computes what the smaller did, learns in its new parts, and every
consumer of weights (local evaluator, gpu-serve's runner) takes a version of another size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cuda_marks import cuda

from azjobs.games.tictactoe import TICTACTOE
from azjobs.inference.local import LocalEvaluator
from azjobs.inference.runner import NetRunner, RunnerOptions
from azjobs.net.grow import grown
from azjobs.net.model import PolicyValueNet
from azjobs.net.weights import read_metadata, to_bytes
from azjobs.settings import Settings, SettingsError
from azjobs.settings.syntax import network_size_at

FP32 = RunnerOptions(precision="fp32", channels_last="off")


def small_net(seed: int = 0, blocks: int = 1, channels: int = 8) -> PolicyValueNet:
    """A network with random weights and batch-norm statistics away from their defaults."""
    torch.manual_seed(seed)
    shape, actions = TICTACTOE.planes_shape, TICTACTOE.num_actions
    net = PolicyValueNet(shape, actions, blocks=blocks, channels=channels, game="tictactoe")
    with torch.no_grad():
        for _ in range(3):  # train-mode passes move the running statistics
            net.train()(planes(32, seed))
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


def planes(k: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 2, size=(k, *TICTACTOE.planes_shape), dtype=np.uint8))


@pytest.mark.parametrize("size", [(3, 8), (1, 24), (2, 16)])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_grown_network_gives_the_same_outputs(size: tuple[int, int], mode: str) -> None:
    small = small_net()
    big = grown(small, *size, seed=5)
    assert (big.blocks, big.channels) == size
    x = planes(64, seed=1)
    with torch.no_grad():
        small.train(mode == "train")
        big.train(mode == "train")
        for got, want in zip(big(x), small(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_the_new_parts_learn_from_the_first_step() -> None:
    small = small_net()
    big = grown(small, 2, 16, seed=5).train()
    logits, value = big(planes(64, seed=2))
    (logits.logsumexp(dim=1).mean() + value.square().mean()).backward()
    params = dict(big.named_parameters())
    # An old channel's weights from the new channels (zero at the switch) and the new block's last norm.
    assert params["tower.0.body.0.weight"].grad[:8, 8:].abs().sum() > 0
    assert params["policy_head.0.weight"].grad[:, 8:].abs().sum() > 0
    assert params["tower.1.body.4.weight"].grad.abs().sum() > 0


def test_growth_is_deterministic_and_never_shrinks() -> None:
    small = small_net()
    a, b = grown(small, 2, 16, seed=3), grown(small, 2, 16, seed=3)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    with pytest.raises(ValueError, match="only grows"):
        grown(small, 1, 4)


def test_the_schedule_sets_the_size_by_positions_made() -> None:
    s = Settings(game="tictactoe", net_blocks=1, net_channels=8, net_grow_schedule="100:2x8, 300:3X16")
    assert [network_size_at(s, p) for p in (0, 99, 100, 299, 300, 10**9)] == [
        (1, 8),
        (1, 8),
        (2, 8),
        (2, 8),
        (3, 16),
        (3, 16),
    ]
    assert network_size_at(s.replace(net_grow_schedule=""), 10**9) == (1, 8)
    for bad, says in [
        ("100:2", "POSITIONS:BLOCKSxCHANNELS"),
        ("0:2x8", "rise from 1"),
        ("200:2x8,100:3x8", "rise from 1"),
        ("100:2x4", "does not grow"),
        ("100:1x8", "does not grow"),
    ]:
        with pytest.raises(SettingsError, match=says):
            s.replace(net_grow_schedule=bad)


def trained_on(big: PolicyValueNet) -> PolicyValueNet:
    """The grown network after some training: its outputs no longer the small one's."""
    with torch.no_grad():
        for p in big.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return big.eval()


def test_consumers_load_a_version_of_another_size() -> None:
    small, x = small_net(), planes(16, seed=3)
    big = trained_on(grown(small, 2, 16, seed=1))
    data = to_bytes(big, {"version": 7})
    assert (read_metadata(data)["blocks"], read_metadata(data)["channels"]) == ("2", "16")
    with torch.no_grad():
        want = [t.numpy() for t in big(x)]

    local = LocalEvaluator(small_net(), version=6)
    local.load(data)
    assert local.version == 7 and (local.model.blocks, local.model.channels) == (2, 16)
    runner = NetRunner(small_net(), "cpu", batch_size=16, max_batch=16, options=FP32)
    runner.load(data, version=7)
    runner.planes[:16] = x.numpy()
    for got in (local.evaluate(x.numpy()), runner.forward(16)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@cuda
@pytest.mark.parametrize("options", [RunnerOptions("fp32", "off", cuda_graphs=True), RunnerOptions("fp32", "off")])
def test_the_runner_builds_its_graphs_again_for_a_grown_version(options: RunnerOptions) -> None:
    x = planes(20, seed=4)
    big = trained_on(grown(small_net(), 2, 16, seed=1))
    with torch.no_grad():
        want = [t.numpy() for t in big(x)]
    lines: list[str] = []
    runner = NetRunner(small_net(), "cuda", batch_size=32, max_batch=32, options=options, log=lines.append)
    runner.load(to_bytes(big, {"version": 2}), version=2)
    assert "network is now 2 blocks x 16 channels" in lines
    assert bool(runner._graphs) == options.cuda_graphs and set(runner._graphs) <= set(runner.buckets)
    runner.planes[:20] = x.numpy()
    for got, w in zip(runner.forward(20), want):
        np.testing.assert_allclose(got, w, rtol=1e-3, atol=1e-4)  # cuDNN's kernels: float rounding
