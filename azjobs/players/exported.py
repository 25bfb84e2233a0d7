"""An exported agent file (`azjobs export`) as a player, `agent:FILE[:sims=N]`: the network alone (its
policy's top legal move), or searching with N simulations and the run's search knobs from its card.

ONNX files run under onnxruntime, TorchScript files under torch; neither needs the run's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from azjobs.errors import AzjobsError
from azjobs.games.base import Game
from azjobs.search import Evaluate, SearchConfig, best_actions

FORMATS = ("onnx", "torchscript")
TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".pth")  # what `azjobs export` writes as TorchScript by default
CARD_KEY = "azjobs.agent"  # the ONNX metadata_props entry that holds the card (JSON)
EXTRA_FILE = "azjobs.agent.json"  # the TorchScript extra file that holds it
CARD_FORMAT = 1
INPUT, OUTPUTS = "planes", ("logits", "value")
CHUNK = 1024  # positions searched together


def sidecar_path(path: Path) -> Path:
    """The card's copy beside an agent file: `FILE.json`."""
    return path.with_name(path.name + ".json")


def format_of(path: Path) -> str:
    """The format of an agent file, from its bytes: TorchScript files are zip archives, ONNX files protobuf."""
    import zipfile

    return "torchscript" if zipfile.is_zipfile(path) else "onnx"


def format_for(path: Path) -> str:
    """The format `azjobs export` writes to `path` unless told: TorchScript for FILE.pt, else ONNX."""
    return "torchscript" if path.suffix.lower() in TORCHSCRIPT_SUFFIXES else "onnx"


@dataclass(frozen=True)
class AgentFile:
    """An agent file loaded: its card and the network behind the `evaluate(planes)` interface."""

    path: Path
    card: dict[str, Any]
    evaluate: Evaluate

    @property
    def version(self) -> int:
        return int(self.card["weights_version"])

    def search_config(self) -> SearchConfig:
        known = SearchConfig.__dataclass_fields__
        return SearchConfig(**{k: v for k, v in self.card.get("search", {}).items() if k in known})


def load_agent_file(path: Path, *, torchscript: bool = True) -> AgentFile:
    """Read an agent file; AzjobsError naming the file if it is missing, damaged or not an agent's.

    A TorchScript file holds code and pickled constants (read by torch's own restricted unpickler), so
    only a user's own command loads one; `torchscript=False` (an evaluation job) takes ONNX files alone,
    which are data."""
    path = Path(path)
    if not path.is_file():
        raise AzjobsError(f"no agent file {path}: write one with `azjobs export`")
    kind = format_of(path)
    if kind == "torchscript" and not torchscript:
        raise AzjobsError(
            f"agent file {path} is TorchScript, which holds code: an evaluation job plays ONNX agents only "
            "(azjobs export --format onnx)"
        )
    try:
        raw, evaluate = _open_onnx(path) if kind == "onnx" else _open_torchscript(path)
        card = json.loads(raw)
    except AzjobsError:
        raise
    except Exception as e:  # onnxruntime and torch raise their own errors for damaged files
        raise AzjobsError(f"agent file {path} cannot be read as {kind}: {str(e).strip().splitlines()[0]}") from None
    if not isinstance(card, dict) or card.get("format") != "azjobs-agent":
        raise AzjobsError(f"agent file {path} has no azjobs card: write it with `azjobs export`")
    return AgentFile(path, card, evaluate)


def _open_onnx(path: Path) -> tuple[str, Evaluate]:
    try:
        import onnxruntime
    except ImportError:
        raise AzjobsError("agent:FILE.onnx needs onnxruntime: pip install 'azjobs[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw = session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
    if raw is None:
        raise AzjobsError(f"agent file {path} has no azjobs card: write it with `azjobs export`")

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, values = session.run(list(OUTPUTS), {INPUT: np.ascontiguousarray(planes, dtype=np.uint8)})
        return np.asarray(logits, np.float32), np.asarray(values, np.float32)

    return raw, evaluate


def _open_torchscript(path: Path) -> tuple[str, Evaluate]:
    import warnings

    import torch

    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated; its files still load
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[EXTRA_FILE]:
        raise AzjobsError(f"agent file {path} has no azjobs card: write it with `azjobs export`")

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, values = module(torch.from_numpy(np.array(planes, dtype=np.uint8)))
        return logits.numpy(), values.numpy()

    raw = extra[EXTRA_FILE]
    return raw.decode() if isinstance(raw, bytes) else str(raw), evaluate


@dataclass
class AgentPlayer:
    """An agent file's network: its policy's top legal move (sims 0), or the most visited after a search."""

    game: Game
    agent: AgentFile
    spec: str  # agent:FILE[:sims=N], as given: the player's name in records and ratings
    sims: int = 0

    @property
    def name(self) -> str:
        return self.spec

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        config = self.agent.search_config()
        parts = [
            best_actions(self.game, states[i : i + CHUNK], self.agent.evaluate, self.sims, config=config, rng=rng)
            for i in range(0, len(states), CHUNK)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def agent_player(
    spec: str, path: Path, game: Game | None, sims: int | None, *, torchscript: bool = True
) -> tuple[Game, AgentPlayer]:
    """The player `agent:FILE[:sims=N]` (spec) for the file at `path`; its game, checked against `game`."""
    from azjobs.games import get_game

    agent = load_agent_file(path, torchscript=torchscript)
    found = get_game(str(agent.card.get("game")))
    if game is not None and game.name != found.name:
        raise AzjobsError(f"agent file {path} plays {found.name}, not {game.name}: pick an agent of {game.name}")
    return found, AgentPlayer(found, agent, spec, sims or 0)
