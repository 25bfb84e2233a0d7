"""docs/settings.md, rendered from the settings' fields (tests/test_settings.py fails when it is out of date)."""

from __future__ import annotations

from azjobs.settings import DEFAULTS, ENV_PREFIX, FIELD_TYPES, PROCESS_SETTINGS, SECTIONS, SPECS, shown

DOC_COMMAND = "python scripts/settings_doc.py"

_DOC_INTRO = """\
# Settings

<!-- Rendered from azjobs/settings/ by `{command}`: edit the code, then run it. -->

Every tunable of a run is one setting. This page lists them all, with their defaults, the values
each takes and what it does; `azjobs settings` prints the effective ones as a TOML file, and
`examples/` holds two commented files to start from.

## Where a setting comes from

Five layers, each overriding the ones before it:

1. the defaults below;
2. the game's own defaults ([Per-game defaults](#per-game-defaults));
3. a TOML file given with `--config FILE`: top-level `name = value` lines;
4. environment variables `AZJOBS_<NAME>`, e.g. `AZJOBS_NUM_SIMULATIONS=200`;
5. flags `--<name>` with dashes, e.g. `--num-simulations 200`.

`azjobs settings [--game G] [--config FILE] [flags]` prints the result, `azjobs settings --run-dir D`
a run's stored settings; either output is a file `--config` accepts. Every value is checked when
it is read: an unknown name, a wrong type, a value out of range (the *values* column), NaN or an
infinity ends the command with one line naming the setting, the value and what is allowed.
Booleans are `true` or `false` in TOML, and `true`, `false`, `1` or `0` in the environment and in
flags; any other spelling is an error, never a silent false.

## Settings belong to the run

The process that creates a run (`azjobs train` or `azjobs run` on a `--run-dir` without settings)
resolves the settings once and stores them in Redis and in `<run_dir>/settings.toml`. Every other
process of the run (gpu-serve, workers, `eval`, `play`, `bestmove`, later `train` and `run`)
reads them from there, so machines never disagree: settings given to a later command on an
existing run are ignored, and it says so ("using its stored settings"). The exceptions are the
few [settings of a process](#settings-of-a-process). What a process does on its own machine
(`--device`, `--threads`, `--precision`) is a flag of its command, not a setting.
Changing a stored setting of an existing run is described in [operations.md](operations.md).

## Settings of a process

A few settings say how one process works, not what the run learns: how many positions gpu-serve
gathers into a batch and how long it waits for them, how often the trainer publishes, checkpoints
and evaluates and how many self-play jobs it keeps queued, how many workers `azjobs run` starts.
The run stores a value of each like any other, and every process uses it unless it was started
with its own: the command's flag below, or the setting's `AZJOBS_<NAME>` variable, checked against
the same values as the setting. That value holds for this process as long as it runs; the run's
stored value stays as it was, and the next process started without one uses the run's again.
`azjobs run` hands its own values to the gpu-serve and trainer it starts. `azjobs status` shows
each process's values, marked `(run: X)` where they differ from the run's (`status --json`: under
`overrides`, with the run's under `run_settings`). Given for another command (say
`azjobs gpu-serve` with `AZJOBS_PUBLISH_EVERY_STEPS`), a process setting is not used.

{process_table}
A GPU server is the usual case: a run created with a CPU's batch of 64 is served on a GPU with
`azjobs gpu-serve --batch-size 512` (the workers' requests stay as they were). A batch fills only
while that many positions wait at once, about workers x `games_in_flight` / 2; with fewer, each
batch waits the full `--wait-ms`.

## The replay window and the train/play ratio

Three settings decide how much training each self-play position gets:

- `min_replay_positions`: training starts once this many positions have been played.
- `replay_buffer_size`: the trainer keeps the newest this many positions and draws each minibatch
  uniformly from them; older positions leave the window. With `replay_window_min_rows` above 0
  the window starts smaller and grows with the run (KataGo's power law), up to this size.
- `max_train_per_position`: the trainer takes a step only while the positions trained on
  (steps x `batch_size`) stay below this many times the positions played; beyond, it waits for
  new games. It is the train/play ratio: at most K training samples per position played.

Together: once the window is full and the trainer keeps up, each position is drawn about
K = `max_train_per_position` times while it is in the window, and the trainer takes one step per
`batch_size` / K new positions. With the defaults (256, 4.0) that is one step per 64 positions,
and a position stays in the window for the next 200,000 positions played. A trainer slower than
that trains each position fewer times; `min_train_per_position` above 0 then pauses self-play
until training catches up, so that no games are played only to leave the window untrained.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _process_table() -> str:
    lines = ["| setting | taken by | flag | environment |\n", "|---|---|---|---|\n"]
    for name, (command, flag) in PROCESS_SETTINGS.items():
        lines.append(f"| `{name}` | `azjobs {command}` | `{flag}` | `{ENV_PREFIX}{name.upper()}` |\n")
    return "".join(lines)


def _settings_tables() -> list[str]:
    lines = ["## Every setting\n"]
    for name in FIELD_TYPES:
        if name in SECTIONS:
            lines += [
                f"\n### {SECTIONS[name]}\n\n",
                "| setting | default | values | meaning |\n",
                "|---|---|---|---|\n",
            ]
        spec, doc = SPECS[name], SPECS[name].doc
        if name in PROCESS_SETTINGS:
            command, flag = PROCESS_SETTINGS[name]
            doc += f"; *a process setting: `azjobs {command} {flag}`*"
        lines.append(
            f"| `{name}` | {_cell(shown(DEFAULTS[name]))} | {_cell(spec.allowed(FIELD_TYPES[name]))} | {_cell(doc)} |\n"
        )
    return lines


def _games_table() -> list[str]:
    from azjobs.games import BUILTIN_MODULES, load_games

    builtin = [(name, game) for name, game in load_games().items() if type(game).__module__ in BUILTIN_MODULES]
    # In BUILTIN_MODULES' order, not in the order a process happened to import the games.
    games = dict(sorted(builtin, key=lambda item: BUILTIN_MODULES.index(type(item[1]).__module__)))
    changed = [name for name in FIELD_TYPES if any(name in game.default_settings for game in games.values())]
    lines = [
        "\n## Per-game defaults\n\n",
        "The settings a game shipped with azjobs sets for itself (layer 2); an empty cell keeps the default.\n\n",
        f"| setting | default | {' | '.join(games)} |\n",
        f"|---|---|{'---|' * len(games)}\n",
    ]
    for name in changed:
        cells = [
            _cell(shown(game.default_settings[name])) if name in game.default_settings else ""
            for game in games.values()
        ]
        lines.append(f"| `{name}` | {_cell(shown(DEFAULTS[name]))} | {' | '.join(cells)} |\n")
    return lines


def markdown() -> str:
    """docs/settings.md: the layers, the run's settings, the replay window, every setting, the games' own."""
    intro = _DOC_INTRO.format(command=DOC_COMMAND, process_table=_process_table())
    return intro + "\n" + "".join(_settings_tables() + _games_table())
