"""Growing the network during a run (`net_grow_schedule`): a bigger network that computes the same function.

Widening keeps every old channel's computation and leaves the new channels unread: each convolution's
weights from a new input channel to an old output channel are zero, so the new channels compute
(random, trainable) features that no old channel sees yet; their outgoing weights start at zero and
learn from the first step, as their inputs are not zero. Deepening appends residual blocks whose last
batch norm has weight and bias 0 (Goyal et al.'s zero-init residual): the block adds nothing, and as
its input has passed a ReLU, relu(x + 0) = x. Both hold in eval and in train mode.
"""

from __future__ import annotations

import torch
from torch import nn

from azjobs.net.model import PolicyValueNet, ResidualBlock


def grown(model: PolicyValueNet, blocks: int, channels: int, *, seed: int = 0) -> PolicyValueNet:
    """A network of `blocks` x `channels` (each at least `model`'s) on `model`'s device and in its mode,
    giving the same outputs as `model`; the new weights are drawn from `seed` alone (the same for the
    trained network and its average)."""
    if blocks < model.blocks or channels < model.channels:
        raise ValueError(f"a network only grows: {model.blocks} x {model.channels} cannot become {blocks} x {channels}")
    with torch.random.fork_rng(devices=[]):  # the run's own random numbers go on as they were
        torch.manual_seed(seed)
        big = PolicyValueNet(model.planes_shape, model.num_actions, blocks=blocks, channels=channels, game=model.game)
    old = model.state_dict()
    with torch.no_grad():
        for name, tensor in big.state_dict().items():
            if name not in old:  # the new blocks'
                continue
            kept = old[name].to(tensor.device)
            tensor[tuple(slice(0, n) for n in kept.shape)] = kept  # old values in the leading slice
        for name, conv in big.named_modules():
            if isinstance(conv, nn.Conv2d) and f"{name}.weight" in old:
                out_old, in_old = old[f"{name}.weight"].shape[:2]
                conv.weight[:out_old, in_old:] = 0.0  # old channels never read the new ones
        for block in list(big.tower)[model.blocks :]:
            assert isinstance(block, ResidualBlock)
            last_norm = block.body[-1]
            assert isinstance(last_norm, nn.BatchNorm2d)
            last_norm.weight.zero_()
            last_norm.bias.zero_()
    device = next(model.parameters()).device
    return big.to(device).train(model.training)
