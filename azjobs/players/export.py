"""`azjobs export`: a run's weights version as a self-contained agent file, ONNX or TorchScript.

The file holds the network (`planes [B, C, H, W] uint8 -> logits [B, A], value [B]`, float32 out,
fp32 or fp16 inside, any batch size) and its card: the game, the encoding of positions, the action
layout, the version with its training figures, its rating and accuracy, and the run's search knobs
(ONNX: the model's metadata_props under `azjobs.agent`; TorchScript: the extra file
`azjobs.agent.json`). The same card lands beside it as `FILE.json`. `azjobs.players.exported` reads
such a file back as a player (`agent:FILE`); docs/using-the-agent.md uses one with onnxruntime alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from azjobs import __version__
from azjobs.errors import AzjobsError
from azjobs.games.base import Game
from azjobs.net.model import PolicyValueNet
from azjobs.players.exported import (
    CARD_FORMAT,
    CARD_KEY,
    EXTRA_FILE,
    FORMATS,
    INPUT,
    OUTPUTS,
    sidecar_path,
)

EXPORT_BATCH = 2  # the example batch the graph is captured with; the batch axis stays dynamic
ONNX_PACKAGES = "onnx and onnxscript"


class AgentNet(nn.Module):
    """The run's network as an agent file holds it: uint8 planes in, float32 out, `dtype` inside."""

    def __init__(self, model: PolicyValueNet, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model.to(dtype).eval()
        self.dtype = dtype

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, value = self.model(planes.to(self.dtype))  # planes [B, C, H, W] uint8
        return logits.float(), value.float()  # [B, A], [B]


@dataclass(frozen=True)
class Exported:
    """What `export_agent` wrote."""

    path: Path
    sidecar: Path
    card: dict[str, Any]


def card(
    game: Game,
    meta: dict[str, str],
    *,
    version: int,
    run: str,
    precision: str,
    standing: dict[str, Any],
    search: dict[str, Any],
    chosen: str,
) -> dict[str, Any]:
    """The agent's card: everything a program needs to feed the network and read its answer."""
    from azjobs.eval.records import version_info

    c, h, w = game.planes_shape
    names = list(game.plane_names) or [f"plane {p}" for p in range(c)]
    return {
        "format": "azjobs-agent",
        "format_version": CARD_FORMAT,
        "azjobs": __version__,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "game": game.name,
        "run": run,
        "weights_version": version,
        "chosen": chosen,
        "training": {k: v for k, v in version_info(meta).items() if k != "version"},
        "network": {"blocks": int(meta["blocks"]), "channels": int(meta["channels"]), "precision": precision},
        "input": {
            "name": INPUT,
            "shape": ["batch", c, h, w],
            "dtype": "uint8",
            "planes": names,
            "values": "0 or 1, seen from the player to move (their pieces first)",
            "layout": game.encoding_doc,
        },
        "outputs": {
            OUTPUTS[0]: {
                "shape": ["batch", game.num_actions],
                "dtype": "float32",
                "meaning": "policy logits, one per action: mask the illegal ones, then argmax (or softmax)",
            },
            OUTPUTS[1]: {
                "shape": ["batch"],
                "dtype": "float32",
                "meaning": "the expected result for the player to move, in [-1, 1] (1 a win, -1 a loss)",
            },
        },
        "actions": {"count": game.num_actions, "names": [game.action_to_str(a) for a in range(game.num_actions)]},
        **standing,
        "search": search,
    }


def export_agent(
    run_dir: Path,
    out: Path,
    *,
    version: int | None = None,
    best: bool = False,
    format: str = "onnx",
    fp16: bool = False,
) -> Exported:
    """Write weights `version` of the run (the newest; with `best`, `net:best`) to `out` as an agent
    file of `format`, with its card inside and beside it. Reads the storage root alone (no Redis)."""
    from azjobs.eval.standing import Standing, best_version, standings
    from azjobs.games import get_game
    from azjobs.jobs.configs import search_config
    from azjobs.net.weights import model_from_bytes
    from azjobs.players.network import weights_from_run_dir
    from azjobs.run import read_file

    if format not in FORMATS:
        raise AzjobsError(f"unknown agent format {format!r}; choose one of: {', '.join(FORMATS)}")
    settings = read_file(run_dir)
    if settings is None:
        raise AzjobsError(f"no run at {run_dir} (no settings.toml): pass the --run-dir of a run that has trained")
    game = get_game(settings.game)
    chosen = "the newest" if version is None else "named"
    if best:
        version, chosen = best_version(run_dir)
    version, data = weights_from_run_dir(run_dir)(version)
    model, meta = model_from_bytes(game, data)
    found = standings(run_dir).get(version)
    info = card(
        game,
        meta,
        version=version,
        run=Path(run_dir).resolve().name,
        precision="fp16" if fp16 else "fp32",
        standing=(found or Standing(version)).to_dict(),
        search=dataclasses.asdict(search_config(settings)),
        chosen=chosen,
    )
    net = AgentNet(model, torch.float16 if fp16 else torch.float32)
    example = torch.zeros((EXPORT_BATCH, *game.planes_shape), dtype=torch.uint8)
    writer = _write_onnx if format == "onnx" else _write_torchscript
    from azjobs.storage.atomic import write_atomic, write_with

    out = Path(out)
    write_with(out, lambda tmp: writer(net, example, info, tmp))
    sidecar = sidecar_path(out)
    write_atomic(sidecar, (json.dumps(info, indent=1) + "\n").encode())
    return Exported(out, sidecar, info)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporters warn of what an agent file never needs (torchvision's ops, deprecations)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _write_onnx(net: AgentNet, example: torch.Tensor, info: dict[str, Any], path: Path) -> None:
    """torch.export's ONNX exporter (torch's default since 2.9), one file with the weights inside."""
    try:
        import onnxscript  # noqa: F401 (the exporter's own dependency, imported here to name it)
    except ImportError:
        raise AzjobsError(f"--format onnx needs {ONNX_PACKAGES}: pip install 'azjobs[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter(), torch.inference_mode(False):
        program = torch.onnx.export(
            net,
            (example,),
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_shapes={"planes": {0: batch}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    assert program is not None  # the dynamo exporter returns its program
    program.model.metadata_props[CARD_KEY] = json.dumps(info)
    program.model.doc_string = f"azjobs agent: {info['game']}, weights version {info['weights_version']}"
    program.save(str(path), external_data=False)


def _write_torchscript(net: AgentNet, example: torch.Tensor, info: dict[str, Any], path: Path) -> None:
    """A traced TorchScript module (torch.jit: deprecated by torch, still loaded by it and by libtorch)."""
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(net, (example,))
    with _quiet_exporter():
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(info)})
