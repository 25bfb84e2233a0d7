"""Trainer checkpoints as safetensors: model, optimizer and averaged-model tensors, with step, version,
settings and the network's architecture (it may have grown since the run began) as metadata.

No pickle: the optimizer state is flattened into named tensors (`optim.<param index>.<key>`)
and its hyperparameters into JSON, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_tensors

from azjobs.errors import AzjobsError
from azjobs.settings import Settings
from azjobs.storage.atomic import write_atomic

CHECKPOINTS_DIR = "checkpoints"
KEEP_CHECKPOINTS = 3
FORMAT = "azjobs-checkpoint-1"
FILE_PATTERN = re.compile(r"^ckpt-(\d+)\.safetensors$")
MODEL_PREFIX = "model."
OPTIM_PREFIX = "optim."
AVERAGED_PREFIX = "ema."  # the averaged network's tensors (ema_decay above 0)
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable")  # optimizer options that are no training state
# Non-tensor optimizer state values, stored as 0-d tensors and turned back into these.
_SCALAR_TYPES: dict[str, Callable[[Any], Any]] = {
    "int": int,
    "float": float,
    "bool": bool,
    "NoneType": lambda _: None,  # e.g. SGD's momentum buffer without momentum
}


# What a checkpoint restores into: the model, its optimizer and its average (or None).
Parts = tuple[torch.nn.Module, torch.optim.Optimizer, torch.nn.Module | None]


class CheckpointError(AzjobsError):
    """A checkpoint that cannot be read (corrupt or truncated)."""


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    version: int
    extra: dict[str, float | int | str]
    path: Path


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """The run's checkpoint files, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [folder / name for name in sorted(name for name in names if FILE_PATTERN.match(name))]


def save_checkpoint(
    run_dir: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    version: int,
    settings: Settings,
    extra: dict[str, float | int | str] | None = None,
    averaged: torch.nn.Module | None = None,
) -> Path:
    """Write `checkpoints/ckpt-<step>.safetensors` atomically and keep only the newest few."""
    tensors = {MODEL_PREFIX + name: _cpu_copy(t) for name, t in model.state_dict().items()}
    if averaged is not None:
        tensors.update({AVERAGED_PREFIX + name: _cpu_copy(t) for name, t in averaged.state_dict().items()})
    optim_tensors, scalar_types, param_groups = _flatten_optimizer(optimizer)
    tensors.update(optim_tensors)
    metadata = {
        "format": FORMAT,
        "step": str(step),
        "version": str(version),
        "created": str(time.time()),
        "settings": settings.to_json(),
        "extra": json.dumps(extra or {}, sort_keys=True),
        "param_groups": json.dumps(param_groups),
        "optim_scalars": json.dumps(scalar_types, sort_keys=True),
        "architecture": json.dumps(_architecture(model), sort_keys=True),
    }
    path = Path(run_dir) / CHECKPOINTS_DIR / f"ckpt-{step:09d}.safetensors"
    write_atomic(path, save_tensors(tensors, metadata))
    for old in checkpoint_paths(run_dir)[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return path


def _architecture(model: torch.nn.Module) -> dict[str, str]:
    """The network's architecture (blocks, channels, ...) if it names one (azjobs' network does)."""
    describe = getattr(model, "architecture", None)
    return dict(describe()) if callable(describe) else {}


def _cpu_copy(t: torch.Tensor) -> torch.Tensor:
    # A copy: safetensors refuses tensors that share storage (tied weights, views).
    return t.detach().to("cpu", copy=True).contiguous()


def _flatten_optimizer(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[dict[str, Any]]]:
    """Optimizer state as named tensors, the Python types of its scalar entries, and its param groups."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalar_types: dict[str, str] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            name = f"{OPTIM_PREFIX}{index}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = _cpu_copy(value)
            else:
                kind = type(value).__name__
                if kind not in _SCALAR_TYPES:
                    raise TypeError(f"cannot checkpoint optimizer state {key} of type {kind}")
                scalar_types[name] = kind
                tensors[name] = torch.tensor(value or 0, dtype=torch.float64 if kind == "float" else torch.int64)
    return tensors, scalar_types, state["param_groups"]


def load_latest_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    log: Callable[[str], None] = print,
    averaged: torch.nn.Module | None = None,
    fit: Callable[[Mapping[str, str]], Parts] | None = None,
) -> CheckpointInfo | None:
    """Restore model and optimizer (and `averaged`) from the newest readable checkpoint; None if there is none.

    A corrupt checkpoint is reported through `log` and the previous one is tried. A checkpoint without
    an average (made before ema_decay was set) starts `averaged` from the model's weights. With `fit`,
    the checkpoint's architecture (empty for checkpoints older than the field) is handed to it first, and
    what it returns (a network of that size: one grown during the run) is restored instead.
    """
    for path in reversed(checkpoint_paths(run_dir)):
        try:
            tensors, metadata = _read(path)
        except CheckpointError as e:
            log(f"warning: {e}; trying the previous checkpoint")
            continue
        if fit is not None:
            model, optimizer, averaged = fit(json.loads(metadata.get("architecture", "{}")))
        _restore(path, tensors, metadata, model, optimizer)
        if averaged is not None:
            kept = _prefixed(tensors, AVERAGED_PREFIX)
            if kept:
                _check_fits(path, averaged, kept)
            averaged.load_state_dict(kept or model.state_dict())
        return CheckpointInfo(
            step=int(metadata["step"]), version=int(metadata["version"]), extra=json.loads(metadata["extra"]), path=path
        )
    return None


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor and the metadata of a checkpoint, checked for completeness."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"format is {metadata.get('format')!r}, expected {FORMAT!r}")
        for field in ("step", "version"):
            int(metadata[field])
        for field in ("extra", "param_groups", "optim_scalars", "settings"):
            json.loads(metadata[field])
        json.loads(metadata.get("architecture", "{}"))
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e})") from None
    return tensors, metadata


def _restore(
    path: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> None:
    model_state = _prefixed(tensors, MODEL_PREFIX)
    _check_fits(path, model, model_state)
    try:
        # The optimizer checks its groups before changing anything, so it goes first.
        optimizer.load_state_dict(_unflatten_optimizer(tensors, metadata, optimizer))
    except ValueError as e:
        raise AzjobsError(f"checkpoint {path} does not fit this optimizer: {e}") from None
    model.load_state_dict(model_state)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}


def _check_fits(path: Path, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """AzjobsError unless `state` has `model`'s tensors, by name and shape."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if {name: tuple(t.shape) for name, t in state.items()} != expected:
        raise AzjobsError(
            f"checkpoint {path} does not fit this network (were net_blocks or net_channels changed?); "
            "start a new run directory or restore the run's settings"
        )


def _unflatten_optimizer(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str], optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    scalar_types: dict[str, str] = json.loads(metadata["optim_scalars"])
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not name.startswith(OPTIM_PREFIX):
            continue
        index, key = name[len(OPTIM_PREFIX) :].split(".", 1)
        value = _SCALAR_TYPES[scalar_types[name]](t.item()) if name in scalar_types else t
        state.setdefault(int(index), {})[key] = value
    groups = json.loads(metadata["param_groups"])
    # JSON turned tuples (Adam's betas) into lists: give each the type the live optimizer uses.
    for saved, live in zip(groups, optimizer.param_groups):
        for key, value in saved.items():
            if isinstance(live.get(key), tuple) and isinstance(value, list):
                saved[key] = tuple(value)
        # How the update is computed (fused on CUDA) belongs to this process, not to the checkpoint's.
        saved.update({key: live[key] for key in IMPLEMENTATION_KEYS if key in live})
    return {"state": state, "param_groups": groups}
