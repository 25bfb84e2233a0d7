"""The policy-value network's shapes and its weights as safetensors bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from azjobs.errors import AzjobsError
from azjobs.games import load_games
from azjobs.games.testing import check_random_playouts
from azjobs.games.tictactoe import TICTACTOE
from azjobs.net import PolicyValueNet, build_model, load_into, model_from_bytes, read_metadata, to_bytes
from azjobs.settings import Settings

SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8)


def _model(seed: int = 0, **size: int) -> PolicyValueNet:
    torch.manual_seed(seed)
    return build_model(TICTACTOE, SETTINGS.replace(**size)).eval()


def _planes(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(k, *TICTACTOE.planes_shape), dtype=np.uint8)  # [K, C, H, W]


@pytest.mark.parametrize("k", [1, 17])
def test_forward_shapes_from_uint8(k: int) -> None:
    model = _model()
    with torch.inference_mode():
        logits, value = model(torch.from_numpy(_planes(k)))
    assert logits.shape == (k, TICTACTOE.num_actions) and logits.dtype == torch.float32
    assert value.shape == (k,)
    assert bool(((value >= -1) & (value <= 1)).all())


def test_uint8_and_float_planes_agree() -> None:
    model, planes = _model(), torch.from_numpy(_planes(5))
    with torch.inference_mode():
        a, va = model(planes)
        b, vb = model(planes.float())
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(va, vb)


def test_build_model_uses_settings_and_game() -> None:
    model = _model(net_blocks=2, net_channels=16)
    assert (model.blocks, model.channels, model.planes_shape, model.num_actions) == (2, 16, (2, 3, 3), 9)
    assert len(model.tower) == 2


def test_weights_round_trip_gives_identical_outputs() -> None:
    source, target = _model(seed=1), _model(seed=2)
    planes = torch.from_numpy(_planes(8))
    data = to_bytes(source, {"version": 7, "step": "350"})
    meta = load_into(target, data)
    assert meta["version"] == "7" and meta["step"] == "350" and meta["game"] == "tictactoe"
    with torch.inference_mode():
        for want, got in zip(source(planes), target(planes)):
            assert torch.equal(want, got)


def test_model_from_bytes_builds_the_saved_architecture() -> None:
    source = _model(seed=3, net_blocks=2, net_channels=16)
    data = to_bytes(source, {"version": "4"})
    model, meta = model_from_bytes(TICTACTOE, data)
    assert (model.blocks, model.channels) == (2, 16) and not model.training
    assert read_metadata(data) == meta
    assert meta["planes_shape"] == "2,3,3" and meta["num_actions"] == "9"
    planes = torch.from_numpy(_planes(3))
    with torch.inference_mode():
        assert torch.equal(source(planes)[0], model(planes)[0])


def test_mismatched_architecture_is_a_one_line_error() -> None:
    data = to_bytes(_model(net_channels=16), {"version": "1"})
    with pytest.raises(AzjobsError, match="16 channels") as info:
        load_into(_model(net_channels=8), data)
    assert "\n" not in str(info.value)


def test_caller_cannot_override_the_architecture() -> None:
    meta = read_metadata(to_bytes(_model(), {"blocks": "9", "version": "2"}))
    assert meta["blocks"] == "1" and meta["version"] == "2"


def test_damaged_weights_are_an_error() -> None:
    with pytest.raises(AzjobsError):
        read_metadata(b"\x01\x02")
    with pytest.raises(AzjobsError):
        load_into(_model(), to_bytes(_model(), {})[:-40])


@pytest.mark.parametrize("name", sorted(load_games()))
def test_every_registered_game_gets_a_network_and_a_round_trip(name: str) -> None:
    game = load_games()[name]
    torch.manual_seed(0)
    model = build_model(game, SETTINGS.replace(game=name)).eval()
    states = check_random_playouts(game, n_games=3, seed=0).states[:5]
    with torch.inference_mode():
        logits, value = model(torch.from_numpy(game.encode(states)))
    assert logits.shape == (len(states), game.num_actions) and value.shape == (len(states),)
    assert model_from_bytes(game, to_bytes(model, {"version": 1}))[0].architecture() == model.architecture()


@pytest.mark.parametrize(("planes_shape", "num_actions"), [((3, 8, 8), 65), ((2, 15, 15), 226), ((1, 1, 5), 3)])
def test_any_board_and_action_count(planes_shape: tuple[int, int, int], num_actions: int) -> None:
    model = PolicyValueNet(planes_shape, num_actions, blocks=1, channels=8).eval()
    with torch.inference_mode():
        logits, value = model(torch.zeros((2, *planes_shape), dtype=torch.uint8))
    assert logits.shape == (2, num_actions) and value.shape == (2,)
