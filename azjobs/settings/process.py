"""Process settings: the few a role may run with values of its own, leaving the run's as stored."""

from __future__ import annotations

from typing import Any, Mapping

from azjobs.settings.fields import FIELD_TYPES, Settings, coerce, shown
from azjobs.settings.spec import SettingsError

# Settings of a process, not of the run: how one role works on its machine, not what the run learns.
# A role started with its own value (its command's flag or AZJOBS_<NAME>) uses it for itself; the
# run's stored value stays as it was. Setting -> (the command that takes it, the flag).
PROCESS_SETTINGS: dict[str, tuple[str, str]] = {
    "selfplay_queue_depth": ("train", "--selfplay-queue-depth"),
    "num_workers": ("run", "--workers"),
    "inference_batch_size": ("gpu-serve", "--batch-size"),
    "inference_wait_ms": ("gpu-serve", "--wait-ms"),
    "publish_every_steps": ("train", "--publish-every-steps"),
    "checkpoint_every_steps": ("train", "--checkpoint-every-steps"),
    "eval_every_versions": ("train", "--eval-every-versions"),
}


def process_settings(command: str) -> list[str]:
    """The process settings `azjobs <command>` takes for itself."""
    return [name for name, (owner, _) in PROCESS_SETTINGS.items() if owner == command]


def own_values(command: str, values: Mapping[str, Any], source: str = "the flags") -> dict[str, Any]:
    """`values` (text parsed as the flags' is) checked as `command`'s own: SettingsError for a value out
    of range, or for a setting that is the run's (fixed when the run is created) or another role's."""
    for name in values:
        if name in FIELD_TYPES and name not in process_settings(command):
            raise SettingsError(
                f"setting {name} is not one `azjobs {command}` takes for itself: "
                f"it is fixed when the run is created (docs/settings.md)"
            )
    return coerce(values, source, text=True)


def for_process(settings: Settings, command: str, values: Mapping[str, Any], source: str = "the flags") -> Settings:
    """The run's settings with this process's own values of its process settings (the run's stay as stored)."""
    return settings.replace(**own_values(command, values, source))


def overridden(own: Settings, run: Settings) -> str:
    """The process settings `own` holds other than the run's, e.g. `inference_batch_size 8 (the run's: 64)`."""
    return ", ".join(
        f"{name} {shown(getattr(own, name))} (the run's: {shown(getattr(run, name))})"
        for name in PROCESS_SETTINGS
        if getattr(own, name) != getattr(run, name)
    )
