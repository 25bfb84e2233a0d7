"""The syntax of the text settings that hold more than a number: learning_rate_schedule, learning_rate_cycle
and eval_opponents."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from azjobs.players.specs import check_opponents
from azjobs.settings.spec import SettingsError

if TYPE_CHECKING:
    from azjobs.settings.fields import Settings


def check_eval_opponents(text: str) -> None:
    """SettingsError unless every entry of eval_opponents is `previous` or a baseline's spec."""
    try:
        check_opponents(text)
    except ValueError as e:
        raise SettingsError(f"setting eval_opponents: {e}") from None


LEARNING_RATE_CYCLES = ("constant", "one_cycle", "cyclic")


def check_cycle(text: str) -> None:
    """SettingsError unless learning_rate_cycle names one of LEARNING_RATE_CYCLES."""
    if text not in LEARNING_RATE_CYCLES:
        names = ", ".join(LEARNING_RATE_CYCLES)
        raise SettingsError(f"setting learning_rate_cycle must be one of {names}, got {text!r}")


@functools.cache  # the trainer asks before every step
def rate_schedule(text: str) -> tuple[tuple[int, float], ...]:
    """The (step, rate) pairs of learning_rate_schedule, steps rising; SettingsError if malformed."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            step, rate = item.split(":")
            pairs.append((int(step), float(rate)))
        except ValueError:
            raise SettingsError(
                f'setting learning_rate_schedule: {item!r} is not STEP:RATE (e.g. "20000:3e-4,40000:1e-4")'
            ) from None
    steps = [step for step, _ in pairs]
    if any(step < 1 for step in steps) or steps != sorted(set(steps)) or any(rate <= 0 for _, rate in pairs):
        raise SettingsError(
            f"setting learning_rate_schedule: steps must rise from 1 and rates be above 0, got {text!r}"
        )
    return tuple(pairs)


def learning_rate_at(settings: Settings, step: int) -> float:
    """The learning rate of training step `step` (0-based: the steps taken before it)."""
    rate = settings.learning_rate
    for start, scheduled in rate_schedule(settings.learning_rate_schedule):
        if step >= start:
            rate = scheduled
    return rate
