"""The search's own configs agree with the run's settings they are built from."""

from __future__ import annotations

from dataclasses import fields

from azjobs.jobs.configs import DERIVED, search_config, selfplay_config
from azjobs.search import SearchConfig, SelfPlayConfig
from azjobs.settings import Settings


def test_the_search_configs_defaults_are_the_settings_defaults() -> None:
    assert search_config(Settings()) == SearchConfig()
    assert selfplay_config(Settings()) == SelfPlayConfig()


def test_every_knob_comes_from_its_setting() -> None:
    changed = Settings(
        num_simulations=7,
        c_puct=2.5,
        gumbel=True,
        cheap_simulations=3,
        forced_playouts=2.0,
        temperature_moves=3,
        resign_value=-0.8,
        resign_playout_share=0.5,
    )
    config = selfplay_config(changed)
    for f in fields(SearchConfig):
        assert getattr(config.search, f.name) == getattr(changed, f.name), f.name
    for f in fields(SelfPlayConfig):
        if f.name not in DERIVED:
            assert getattr(config, f.name) == getattr(changed, f.name), f.name
    assert config.search.num_simulations == 7 and config.temperature_moves == 3


def test_root_statistics_are_recorded_only_where_the_targets_use_them() -> None:
    assert not selfplay_config(Settings()).root_statistics
    assert selfplay_config(Settings(value_target_q_weight=0.5)).root_statistics
    assert selfplay_config(Settings(policy_surprise_weight=0.5)).root_statistics
    assert not selfplay_config(Settings(merge_duplicates=0.8, soft_policy_weight=8.0)).root_statistics
