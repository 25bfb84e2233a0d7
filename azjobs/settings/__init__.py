"""One settings object per run: defaults < game defaults < TOML file < AZJOBS_* env < flags.

The process that creates a run (`azjobs train` or `azjobs run`) resolves the settings once and
stores them in Redis and in `<run_dir>/settings.toml` (`azjobs.run`); every other process of the
run reads them back from there, so machines never disagree (a role may run with its own values of
the few PROCESS_SETTINGS, which leaves the run's as stored). A leaf: it imports nothing of azjobs
but errors and the player specs. Its modules: `spec` (what a setting takes), `fields` (the
Settings and the checks of each value), `syntax` (the schedule's and the opponents' text),
`sources` (file, environment, flags), `process` (process settings), `render` (the TOML file).
"""

from azjobs.settings.fields import (
    DEFAULTS,
    DOCS,
    FALSE,
    FIELD_TYPES,
    SPECS,
    TEXT_SOURCES,
    TRUE,
    Settings,
    check_value,
    coerce,
    shown,
)
from azjobs.settings.process import PROCESS_SETTINGS, for_process, overridden, own_values, process_settings
from azjobs.settings.render import SECTIONS, to_toml
from azjobs.settings.sources import ENV_PREFIX, given, load_toml
from azjobs.settings.spec import SettingsError, Spec, setting
from azjobs.settings.syntax import learning_rate_at, rate_schedule

__all__ = [
    "DEFAULTS",
    "DOCS",
    "ENV_PREFIX",
    "FALSE",
    "FIELD_TYPES",
    "PROCESS_SETTINGS",
    "SECTIONS",
    "SPECS",
    "TEXT_SOURCES",
    "TRUE",
    "Settings",
    "SettingsError",
    "Spec",
    "check_value",
    "coerce",
    "for_process",
    "given",
    "learning_rate_at",
    "load_toml",
    "overridden",
    "own_values",
    "process_settings",
    "rate_schedule",
    "setting",
    "shown",
    "to_toml",
]
