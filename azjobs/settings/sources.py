"""Where a new run's values come from: a TOML file, the AZJOBS_* environment and the flags, in that order."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from azjobs.settings.fields import FIELD_TYPES, coerce
from azjobs.settings.spec import SettingsError

ENV_PREFIX = "AZJOBS_"


def given(
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The values the file, the environment and the flags set, each checked, later layers winning."""
    environ = os.environ if environ is None else environ
    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(coerce(load_toml(Path(config_file), "config file"), str(config_file)))
    env = {name: environ[ENV_PREFIX + name.upper()] for name in FIELD_TYPES if ENV_PREFIX + name.upper() in environ}
    layers.append(coerce(env, "the environment", text=True))
    layers.append(coerce({k: v for k, v in (flags or {}).items() if v is not None}, "the flags", text=True))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def load_toml(path: Path, what: str) -> dict[str, Any]:
    """The file's top-level table; SettingsError naming the file and the fix if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise SettingsError(f"cannot read {what} {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(
            f"{what} {path} is not valid TOML ({e}): fix that line; each setting is "
            f"`name = value`, text in quotes, booleans true or false"
        ) from None
    except UnicodeDecodeError:
        raise SettingsError(f"{what} {path} is not valid TOML (not UTF-8 text): is it the right file?") from None
