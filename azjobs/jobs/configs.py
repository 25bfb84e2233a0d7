"""The search's configs built from a run's settings: the one place where `Settings` meet the search.

The search (`azjobs.search`) knows nothing of settings; the jobs, players, benchmarks and commands
that build a search take its config from here. Each knob keeps its setting's name, and
tests/jobs/test_configs.py checks that the defaults agree.
"""

from __future__ import annotations

from dataclasses import fields, replace

from azjobs.search.config import SearchConfig, SelfPlayConfig
from azjobs.settings import Settings

DERIVED = ("search", "root_statistics")  # SelfPlayConfig's fields that are not settings of the same name


def search_config(settings: Settings) -> SearchConfig:
    """The search knobs of `settings`."""
    return SearchConfig(**{f.name: getattr(settings, f.name) for f in fields(SearchConfig)})


def selfplay_config(settings: Settings, simulations: int | None = None) -> SelfPlayConfig:
    """The search and self-play knobs of `settings`; `simulations` (a job's progressive count) in place
    of num_simulations (cheap searches stay at most that many)."""
    own = {f.name: getattr(settings, f.name) for f in fields(SelfPlayConfig) if f.name not in DERIVED}
    search = search_config(settings)
    if simulations is not None:
        search = replace(search, num_simulations=simulations)
    return SelfPlayConfig(search=search, root_statistics=needs_root_statistics(settings), **own)


def needs_root_statistics(settings: Settings) -> bool:
    """Whether the training targets use each move's root value and prior (recording them costs the
    search a few percent, so self-play records them only then)."""
    return settings.value_target_q_weight > 0 or settings.policy_surprise_weight > 0
