"""Network weights as safetensors bytes, with the architecture and version in the metadata.

The same bytes go to Redis, to `<run_dir>/weights/` and to every inference server; no pickle.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Mapping

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from azjobs.errors import AzjobsError
from azjobs.net.model import PolicyValueNet

if TYPE_CHECKING:
    from azjobs.games.base import Game

ARCHITECTURE_FIELDS = ("game", "blocks", "channels", "planes_shape", "num_actions")


def to_bytes(model: PolicyValueNet, metadata: Mapping[str, object]) -> bytes:
    """The model's weights as safetensors bytes; metadata: the architecture plus the caller's fields."""
    meta = {str(k): str(v) for k, v in metadata.items()}
    arch = model.architecture()
    if not arch["game"]:
        arch["game"] = meta.get("game", "")
    meta.update(arch)  # the model's own architecture always wins over a caller's claim
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    return st_save(tensors, metadata=meta)


def read_metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes, without reading the tensors."""
    if len(data) < 8:
        raise AzjobsError(f"weights data is not safetensors ({len(data)} bytes): the file or Redis value is damaged")
    (size,) = struct.unpack_from("<Q", data)
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
        meta = header.get("__metadata__") or {}
        return {str(k): str(v) for k, v in meta.items()}
    except (ValueError, AttributeError):
        raise AzjobsError("weights data is not safetensors (bad header): the file or Redis value is damaged") from None


def _describe(arch: Mapping[str, str]) -> str:
    planes = arch.get("planes_shape", "?").replace(",", "x")
    return (
        f"{arch.get('game') or 'an unnamed game'} with {arch.get('blocks', '?')} blocks x "
        f"{arch.get('channels', '?')} channels, planes {planes}, {arch.get('num_actions', '?')} actions"
    )


def _check_architecture(model: PolicyValueNet, meta: Mapping[str, str]) -> None:
    want = model.architecture()
    differs = [f for f in ARCHITECTURE_FIELDS if f in meta and meta[f] and want[f] and meta[f] != want[f]]
    if differs:
        raise AzjobsError(
            f"weights are for {_describe(meta)}, but the network is {_describe(want)}: "
            "use the run's own settings (net_blocks, net_channels, game)"
        )


def load_into(model: PolicyValueNet, data: bytes) -> dict[str, str]:
    """Load weights into `model` in place (strictly: every tensor must match); their metadata."""
    meta = read_metadata(data)
    _check_architecture(model, meta)
    try:
        tensors = st_load(bytes(data))
    except Exception as e:  # safetensors raises its own SafetensorError for damaged bytes
        raise AzjobsError(f"weights data is damaged: {e}") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AzjobsError(f"weights do not fit the network {_describe(model.architecture())}: {first}") from None
    return meta


def model_from_bytes(game: Game, data: bytes) -> tuple[PolicyValueNet, dict[str, str]]:
    """A network built from the architecture named in the weights' metadata, loaded, in eval mode."""
    meta = read_metadata(data)
    missing = [f for f in ("blocks", "channels") if f not in meta]
    if missing:
        raise AzjobsError(f"weights data names no network size ({', '.join(missing)} missing): not azjobs weights")
    if meta.get("game") and meta["game"] != game.name:
        raise AzjobsError(f"weights are for game {meta['game']}, not {game.name}: use the run that made them")
    model = PolicyValueNet(
        game.planes_shape,
        game.num_actions,
        blocks=int(meta["blocks"]),
        channels=int(meta["channels"]),
        game=game.name,
    )
    load_into(model, data)
    return model.eval(), meta


def regrown(model: PolicyValueNet, meta: Mapping[str, str]) -> PolicyValueNet | None:
    """A fresh network of the size the metadata names (same game, planes and actions as `model`), in eval
    mode on `model`'s device; None when `model` already has that size. Weights of a run whose network
    grew (net_grow_schedule) name another size than the network built from the run's settings."""
    try:
        size = (int(meta["blocks"]), int(meta["channels"]))
    except (KeyError, ValueError):
        return None  # load_into says what does not fit
    if size == (model.blocks, model.channels):
        return None
    other = PolicyValueNet(model.planes_shape, model.num_actions, blocks=size[0], channels=size[1], game=model.game)
    return other.to(next(model.parameters()).device).eval()


def weights_version(meta: Mapping[str, str], default: int = 0) -> int:
    """The `version` field of weights metadata, or `default` when it names none."""
    try:
        return int(meta["version"])
    except (KeyError, ValueError):
        return default


__all__ = ["load_into", "model_from_bytes", "read_metadata", "regrown", "to_bytes", "weights_version"]
