"""The settings as a commented TOML file (what `azjobs settings` prints and `<run_dir>/settings.toml` holds)."""

from __future__ import annotations

import json

from azjobs.settings.fields import DOCS, FIELD_TYPES, SPECS, Settings

# The sections of the docs and of `azjobs settings`: each starts at the setting named.
SECTIONS: dict[str, str] = {
    "game": "The run",
    "net_blocks": "Network",
    "num_simulations": "Search",
    "gumbel": "Strength per compute",
    "games_per_job": "Self-play",
    "inference_batch_size": "Inference server",
    "replay_buffer_size": "Training",
    "replay_window_min_rows": "Growing replay window",
    "learning_rate_cycle": "Schedules and the averaged network",
    "eval_every_versions": "Evaluation and gating",
}


def to_toml(settings: Settings, title: str = "azjobs run settings: written once when the run was created.") -> str:
    """Every setting as a TOML file `--config` reads, each under a comment line saying what it means."""
    lines = [
        f"# {title}\n",
        "# Each setting: `# meaning; values allowed`, then `name = value`. docs/settings.md has more.\n",
    ]
    for name, value in settings.to_dict().items():
        if name in SECTIONS:
            lines.append(f"\n# == {SECTIONS[name]} ==\n")
        lines.append(f"# {DOCS[name]}; {SPECS[name].allowed(FIELD_TYPES[name])}\n")
        lines.append(f"{name} = {json.dumps(value)}\n")  # JSON's numbers, strings and booleans are TOML's too
    return "".join(lines)
