"""The syntax of the text settings that hold more than a number: learning_rate_schedule, learning_rate_cycle,
net_grow_schedule and eval_opponents."""

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


@functools.cache  # the trainer asks before every step
def grow_schedule(text: str) -> tuple[tuple[int, int, int], ...]:
    """The (positions, blocks, channels) steps of net_grow_schedule, positions rising; SettingsError if
    malformed. Whether each step grows the network the settings check (they know its first size)."""
    steps = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            positions, size = item.split(":")
            blocks, channels = size.lower().split("x")
            steps.append((int(positions), int(blocks), int(channels)))
        except ValueError:
            raise SettingsError(
                f'setting net_grow_schedule: {item!r} is not POSITIONS:BLOCKSxCHANNELS (e.g. "200000:6x96")'
            ) from None
    marks = [positions for positions, _, _ in steps]
    if any(mark < 1 for mark in marks) or marks != sorted(set(marks)):
        raise SettingsError(f"setting net_grow_schedule: the positions must rise from 1, got {text!r}")
    return tuple(steps)


def network_size_at(settings: Settings, positions: int) -> tuple[int, int]:
    """(blocks, channels) of the network once the run has made `positions` positions."""
    size = (settings.net_blocks, settings.net_channels)
    for mark, blocks, channels in grow_schedule(settings.net_grow_schedule):
        if positions >= mark:
            size = (blocks, channels)
    return size


def check_growth(settings: Settings) -> None:
    """SettingsError unless each step of net_grow_schedule grows the network and none shrinks it."""
    size = (settings.net_blocks, settings.net_channels)
    for mark, blocks, channels in grow_schedule(settings.net_grow_schedule):
        if blocks < size[0] or channels < size[1] or (blocks, channels) == size:
            raise SettingsError(
                f"setting net_grow_schedule: at {mark} positions {blocks}x{channels} does not grow the "
                f"network from {size[0]}x{size[1]}: each step adds blocks or channels and removes none"
            )
        size = (blocks, channels)
