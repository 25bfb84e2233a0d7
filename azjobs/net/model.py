"""The AlphaZero network: a residual tower of 3x3 convolutions with a policy and a value head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from azjobs.games.base import Game
    from azjobs.settings import Settings

VALUE_HIDDEN = 64  # width of the value head's hidden layer


def _conv_bn(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    # No conv bias: the batch norm right after it has its own.
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]


class ResidualBlock(nn.Module):
    """Two 3x3 conv+BN layers with a skip connection around them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(channels, channels, 3), nn.ReLU(inplace=True), *_conv_bn(channels, channels, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class PolicyValueNet(nn.Module):
    """planes `[B, C, H, W]` (uint8 or float) -> (policy logits `[B, A]`, value `[B]` in [-1, 1]).

    The value is for the player to move, as the planes are drawn from that player's side.
    """

    def __init__(
        self, planes_shape: tuple[int, int, int], num_actions: int, *, blocks: int, channels: int, game: str = ""
    ) -> None:
        super().__init__()
        c, h, w = planes_shape
        self.planes_shape = (int(c), int(h), int(w))
        self.num_actions = int(num_actions)
        self.blocks = int(blocks)
        self.channels = int(channels)
        self.game = game  # recorded in saved weights, so they are not loaded for another game
        self.stem = nn.Sequential(*_conv_bn(c, channels, 3), nn.ReLU(inplace=True))
        self.tower = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.policy_head = nn.Sequential(*_conv_bn(channels, 2, 1), nn.ReLU(inplace=True), nn.Flatten())
        self.policy_out = nn.Linear(2 * h * w, num_actions)
        self.value_head = nn.Sequential(
            *_conv_bn(channels, 1, 1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(h * w, VALUE_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(VALUE_HIDDEN, 1),
            nn.Tanh(),
        )

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # uint8 planes travel to the device as bytes (4x less traffic) and become floats there.
        x = planes if planes.is_floating_point() else planes.float()  # [B, C, H, W]
        x = self.tower(self.stem(x))  # [B, channels, H, W]
        logits = self.policy_out(self.policy_head(x))  # [B, A]
        value = self.value_head(x).squeeze(-1)  # [B]
        return logits, value

    def architecture(self) -> dict[str, str]:
        """What a saved set of weights must match to be loaded into this model."""
        return {
            "game": self.game,
            "blocks": str(self.blocks),
            "channels": str(self.channels),
            "planes_shape": ",".join(map(str, self.planes_shape)),
            "num_actions": str(self.num_actions),
        }


def build_model(game: Game, settings: Settings) -> PolicyValueNet:
    """A freshly initialised network of the run's size for `game`."""
    return PolicyValueNet(
        game.planes_shape,
        game.num_actions,
        blocks=settings.net_blocks,
        channels=settings.net_channels,
        game=game.name,
    )
