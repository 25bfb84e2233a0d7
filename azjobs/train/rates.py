"""What the run's progress sets: the learning rate of a training step, and the simulations of a self-play
job queued after N positions were made. Pure functions of the step or the count, so a resumed trainer
continues where it stopped (docs/training.md gives the formulas)."""

from __future__ import annotations

from azjobs.settings import Settings, learning_rate_at


def cycle_factor(settings: Settings, step: int) -> float:
    """The multiple of the scheduled rate at `step` (0-based): 1 with `constant`; with a cycle of P steps
    and peak M, 1 + (M - 1) x (1 - |2 x (step mod P) / P - 1|), a triangle from 1 up to M and back, once
    (`one_cycle`, then 1) or every P steps (`cyclic`)."""
    kind, period = settings.learning_rate_cycle, settings.learning_rate_period
    if kind == "constant" or (kind == "one_cycle" and step >= period):
        return 1.0
    triangle = 1.0 - abs(2.0 * (step % period) / period - 1.0)  # 0 at a cycle's ends, 1 in its middle
    return 1.0 + (settings.learning_rate_peak - 1.0) * triangle


def learning_rate(settings: Settings, step: int) -> float:
    """The learning rate of training step `step`: learning_rate with its drops, times the cycle's factor."""
    return learning_rate_at(settings, step) * cycle_factor(settings, step)


def simulations(settings: Settings, made: int) -> int:
    """Simulations per move of a self-play job queued when the run had made `made` positions: with
    simulations_start S above 0, S + (num_simulations - S) x min(1, made / simulations_ramp_positions),
    rounded down; num_simulations without."""
    start, full = settings.simulations_start, settings.num_simulations
    if not start:
        return full
    ramp = settings.simulations_ramp_positions
    return start + (full - start) * min(max(0, made), ramp) // ramp  # integers: exact at every count
