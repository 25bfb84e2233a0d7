"""One settings object per run: defaults < game defaults < TOML file < AZJOBS_* env < flags.

The process that creates a run (`azjobs train` or `azjobs run`) resolves the settings
once and stores them in Redis and in `<run_dir>/settings.toml`; every other process of
the run reads them back from there, so machines never disagree (a role may run with its own
values of the few PROCESS_SETTINGS, which leaves the run's as stored).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from azjobs import keys
from azjobs.errors import AzjobsError
from azjobs.players.specs import check_opponents

if TYPE_CHECKING:
    from redis import Redis

ENV_PREFIX = "AZJOBS_"
SETTINGS_FILE = "settings.toml"


class SettingsError(AzjobsError, ValueError):
    """A setting has an unknown name, a value of the wrong type, or one out of its range."""


@dataclass(frozen=True)
class Spec:
    """What one setting means and which values it takes: docs, --help, TOML comments and checks read it."""

    doc: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    text: str = "text"  # the values a text setting takes, in words

    def allows(self, value: float) -> bool:
        return math.isfinite(value) and not (
            (self.at_least is not None and value < self.at_least)
            or (self.above is not None and value <= self.above)
            or (self.at_most is not None and value > self.at_most)
        )

    def allowed(self, kind: type) -> str:
        """The values it takes in words, e.g. "a number in (0, 1]" or "an integer >= 1"."""
        if kind is bool:
            return "true or false"
        if kind is str:
            return self.text
        noun = "an integer" if kind is int else "a number"
        low = self.at_least if self.at_least is not None else self.above
        if low is not None and self.at_most is not None:
            return f"{noun} in {'[' if self.above is None else '('}{_num(low)}, {_num(self.at_most)}]"
        if low is not None:
            return f"{noun} {'>=' if self.above is None else '>'} {_num(low)}"
        return f"{noun} <= {_num(self.at_most)}" if self.at_most is not None else noun


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def setting(
    default: Any,
    doc: str,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    text: str = "text",
) -> Any:
    """A Settings field: its default, its one-line meaning and its range (bounds as in Spec)."""
    return field(default=default, metadata={"spec": Spec(doc, at_least, above, at_most, text)})


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
    "eval_every_versions": "Evaluation and gating",
}


@dataclass(frozen=True)
class Settings:
    """Every tunable of a run, each with its meaning and range (docs/settings.md is rendered from them)."""

    game: str = setting("connect4", "the game to learn (`azjobs games` lists them)", text="a game's name")
    seed: int = setting(0, "seed of the run's random numbers", at_least=0)
    # Network: a residual tower with policy and value heads.
    net_blocks: int = setting(4, "residual blocks in the network", at_least=1)
    net_channels: int = setting(64, "channels of each convolution", at_least=1)
    # Search (PUCT MCTS).
    num_simulations: int = setting(100, "MCTS simulations per move in self-play", at_least=1)
    c_puct: float = setting(1.5, "PUCT exploration constant", above=0)
    dirichlet_alpha: float = setting(1.0, "Dirichlet noise concentration at the root", above=0)
    dirichlet_fraction: float = setting(0.25, "share of Dirichlet noise in the root priors", at_least=0, at_most=1)
    temperature_moves: int = setting(
        10, "moves of each game chosen in proportion to visits; later moves take the most visited", at_least=0
    )
    reuse_tree: bool = setting(
        True,
        "keep the searched subtree of the move played for the next search (its visits count toward num_simulations)",
    )
    # Strength per compute; the defaults are plain AlphaZero (games turn some on).
    gumbel: bool = setting(
        False,
        "Gumbel search: sequential halving over Gumbel-sampled root actions, the improved policy pi' as "
        "the policy target, no Dirichlet noise, no tree reuse",
    )
    gumbel_considered: int = setting(16, "root actions Gumbel search samples and halves (mctx: 16)", at_least=1)
    gumbel_c_visit: float = setting(
        50.0, "c_visit of Gumbel's sigma(q) = (c_visit + max visits) x c_scale x q (mctx: 50)", at_least=0
    )
    gumbel_c_scale: float = setting(1.0, "c_scale of Gumbel's sigma(q)", above=0)
    full_search_prob: float = setting(
        1.0,
        "playout cap randomization: the share of self-play moves searched with num_simulations; the others "
        "get cheap_simulations without noise and are no policy targets (1: all full)",
        above=0,
        at_most=1,
    )
    cheap_simulations: int = setting(
        0, "simulations of a cheap search, at most num_simulations (0: num_simulations // 4)", at_least=0
    )
    fpu_reduction: float = setting(
        0.0,
        "first-play urgency: an unvisited child's Q is its parent's mean value less this times the square "
        "root of the visited children's priors (0: the mean)",
        at_least=0,
    )
    fpu_reduction_root: float = setting(0.0, "fpu_reduction at the root", at_least=0)
    forced_playouts: float = setting(
        0.0,
        "KataGo's forced playouts: noisy root children get sqrt(k x prior x visits) visits, and the policy "
        "target is pruned of them; this is k (0: off; KataGo: 2)",
        at_least=0,
    )
    resign_value: float = setting(
        -1.0,
        "self-play resigns when the root value and the most visited child's value are both below this (-1: never)",
        at_least=-1,
        at_most=1,
    )
    resign_playout_share: float = setting(
        0.1, "share of self-play games that never resign, played out to count false resignations", at_least=0, at_most=1
    )
    # Self-play.
    games_per_job: int = setting(
        1024,
        "games one self-play job plays (and stores as one replay shard); 8 x games_in_flight keeps the "
        "job's tail, with ever fewer games left, short",
        at_least=1,
    )
    games_in_flight: int = setting(
        128,
        "games a self-play job searches at once, in two groups whose requests alternate; a finished "
        "game's slot takes the job's next game",
        at_least=1,
    )
    weight_sync_interval: int = setting(
        2, "games between weight checks in a worker that evaluates in-process (--evaluator local)", at_least=1
    )
    selfplay_queue_depth: int = setting(4, "self-play jobs the trainer keeps waiting in the queue", at_least=1)
    num_workers: int = setting(
        0,
        "workers `azjobs run` starts (0: cores - 1, at least 1); each `azjobs run` takes its own, not the stored one",
        at_least=0,
    )
    # Inference server.
    inference_batch_size: int = setting(
        64, "positions gpu-serve gathers before a forward pass (one group's request: games_in_flight / 2)", at_least=1
    )
    inference_wait_ms: float = setting(
        2.0, "longest gpu-serve waits, in milliseconds, to fill a batch", at_least=0, at_most=1000
    )
    max_request_positions: int = setting(
        4096, "positions per request above which a request is dropped as oversized", at_least=1
    )
    # Training.
    replay_buffer_size: int = setting(
        200_000, "newest positions the trainer samples from (the replay window)", at_least=1
    )
    min_replay_positions: int = setting(
        4_000, "positions needed before training starts, at most replay_buffer_size", at_least=1
    )
    batch_size: int = setting(256, "positions per training minibatch", at_least=1)
    learning_rate: float = setting(1e-3, "AdamW learning rate", above=0)
    learning_rate_schedule: str = setting(
        "",
        "learning rate drops, STEP:RATE,... (e.g. 20000:3e-4,40000:1e-4): from training step STEP on, "
        "RATE (empty: learning_rate throughout)",
        text="STEP:RATE pairs, steps rising, or empty",
    )
    weight_decay: float = setting(1e-4, "AdamW weight decay", at_least=0)
    publish_every_steps: int = setting(100, "training steps between published weights versions", at_least=1)
    checkpoint_every_steps: int = setting(500, "training steps between checkpoints (and one on exit)", at_least=1)
    max_train_per_position: float = setting(
        4.0, "mean times each position is trained on; the trainer waits for new games beyond it", above=0
    )
    min_train_per_position: float = setting(
        0.0,
        "the trainer stops queueing self-play while it has trained fewer times per position than this "
        "(0: never), so slow training does not waste games; at most max_train_per_position",
        at_least=0,
    )
    weights_kept_in_redis: int = setting(
        5, "newest weights versions kept in Redis (all stay on the storage root)", at_least=1
    )
    # Replay window growing with the data (KataGo's power law); 0 rows: a fixed window.
    replay_window_min_rows: int = setting(
        0,
        "KataGo's growing window: with N positions made, sample the newest c x (1 + expand x ((N / c) ^ "
        "exponent - 1) / exponent), c this setting, at most replay_buffer_size (0: always "
        "replay_buffer_size)",
        at_least=0,
    )
    replay_window_exponent: float = setting(
        0.65, "exponent of the growing replay window (KataGo: 0.65)", above=0, at_most=1
    )
    replay_window_expand: float = setting(
        0.4, "new window rows per new position where the window starts to grow (KataGo: 0.4)", above=0
    )
    # Evaluation, ratings and gating.
    eval_every_versions: int = setting(
        10, "the trainer evaluates weights versions 1, 1+N, 1+2N, ... (0: never)", at_least=0
    )
    eval_games: int = setting(
        20, "games per evaluation match (half with each colour, from paired random openings)", at_least=2
    )
    eval_opponents: str = setting(
        "previous,random,oneply,alphabeta:4",
        "who each evaluated version plays, comma-separated: previous "
        "(the version evaluated before) and baselines: random, oneply, alphabeta:DEPTH, mcts:SIMULATIONS",
        text="previous and baseline players, comma-separated",
    )
    eval_simulations: int = setting(
        100, "search simulations of network players in evaluation (accuracy also with 0)", at_least=0
    )
    eval_opening_moves: int = setting(2, "random moves that open each evaluation game", at_least=0)
    eval_positions: str = setting(
        "",
        "labelled positions scored for each evaluated version: a bundled set's name (connect4) or a "
        "JSON-lines file (format: docs/evaluation.md); copied into <run_dir>/evals/ when the run is created",
        text="a bundled set's name, a file's path, or empty",
    )
    gating: bool = setting(False, "serve a new weights version to self-play only once it beats the served one")
    gating_threshold: float = setting(
        0.55, "share of the points a new version needs against the served one to pass the gate", above=0, at_most=1
    )

    def __post_init__(self) -> None:
        for name in FIELD_TYPES:  # each value on its own: its type (ints read as floats) and its range
            object.__setattr__(self, name, check_value(name, getattr(self, name)))
        if self.cheap_simulations > self.num_simulations:
            raise SettingsError(
                f"cheap_simulations ({self.cheap_simulations}) exceeds num_simulations "
                f"({self.num_simulations}): a cheap search cannot be the bigger one"
            )
        if self.min_train_per_position > self.max_train_per_position:
            raise SettingsError(
                f"min_train_per_position ({self.min_train_per_position}) must be at most "
                f"max_train_per_position ({self.max_train_per_position})"
            )
        if -(-self.games_in_flight // 2) > self.max_request_positions:
            raise SettingsError(
                f"games_in_flight ({self.games_in_flight}) makes requests of {-(-self.games_in_flight // 2)} "
                f"positions, "
                f"above max_request_positions ({self.max_request_positions}): servers would drop them; "
                f"lower games_in_flight or raise max_request_positions"
            )
        if self.min_replay_positions > self.replay_buffer_size:
            raise SettingsError(
                f"min_replay_positions ({self.min_replay_positions}) exceeds replay_buffer_size "
                f"({self.replay_buffer_size}): the trainer would wait forever; lower it or raise the buffer"
            )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Settings:
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise SettingsError(
                "the run's settings stored in Redis are not a JSON object: delete their key, and "
                "the next process of the run restores them from <run_dir>/settings.toml"
            )
        return cls.from_mapping(values, source="the run's settings in Redis")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str, *, text: bool = False) -> Settings:
        """Settings from `source`'s values; with text, strings are parsed as the environment's are."""
        return cls(**_coerce(values, source, text=text))


def _check_opponents(text: str) -> None:
    try:
        check_opponents(text)
    except ValueError as e:
        raise SettingsError(f"setting eval_opponents: {e}") from None


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


FIELD_TYPES: dict[str, type] = {
    f.name: {"str": str, "int": int, "float": float, "bool": bool}[str(f.type)] for f in fields(Settings)
}
SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(Settings)}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
DOCS: dict[str, str] = {name: spec.doc for name, spec in SPECS.items()}  # the CLI's --help says the same
TRUE, FALSE = ("true", "1"), ("false", "0")  # the spellings of a boolean in the environment and in flags
TEXT_SOURCES = ("the environment", "the flags")  # where values arrive as text


def _bad(name: str, value: Any, source: str | None) -> SettingsError:
    where = f" in {source}" if source else ""
    allowed = SPECS[name].allowed(FIELD_TYPES[name])
    if FIELD_TYPES[name] is bool and source in TEXT_SOURCES:
        allowed = "true, false, 1 or 0"
    return SettingsError(f"setting {name}{where} must be {allowed} (default {_shown(DEFAULTS[name])}), got {value!r}")


def check_value(name: str, value: Any, source: str | None = None) -> Any:
    """`value` as setting `name` holds it (an int where a float is asked for becomes one); SettingsError
    naming the setting, the value and the values allowed if it has the wrong type or is out of range."""
    kind = FIELD_TYPES[name]
    if kind is bool or kind is str:
        if type(value) is not kind:
            raise _bad(name, value, source)
        if name == "eval_opponents" and isinstance(value, str):
            _in_source(_check_opponents, value, source)
        elif name == "learning_rate_schedule" and isinstance(value, str):
            _in_source(rate_schedule, value, source)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real if kind is float else numbers.Integral):
        raise _bad(name, value, source)
    value = kind(value)
    if not SPECS[name].allows(value):
        raise _bad(name, value, source)
    return value


def _in_source(check: Callable[[str], Any], value: str, source: str | None) -> None:
    try:
        check(value)
    except SettingsError as e:
        raise SettingsError(f"{e} (in {source})" if source else str(e)) from None


def _coerce(values: Mapping[str, Any], source: str, *, text: bool = False) -> dict[str, Any]:
    """Each known setting of `values`, checked; with text, a string is parsed for a number or boolean."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in FIELD_TYPES:
            raise SettingsError(
                f"unknown setting {name!r} in {source}; `azjobs settings` prints them all "
                f"(their meanings: docs/settings.md)"
            )
        if text and isinstance(value, str) and FIELD_TYPES[name] is not str:
            value = _parse(name, value, source)
        out[name] = check_value(name, value, source)
    return out


def _parse(name: str, text: str, source: str) -> Any:
    """A number or boolean written as text: strict, so that a misspelling is an error and not false."""
    kind, word = FIELD_TYPES[name], text.strip().lower()
    if kind is bool:
        if word in TRUE + FALSE:
            return word in TRUE
        raise _bad(name, text, source)
    try:
        return kind(word)
    except ValueError:
        raise _bad(name, text, source) from None


def _shown(value: Any) -> str:
    """A value as the docs show it: booleans as TOML writes them, the empty string as \"\"."""
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def game_defaults(game: str) -> dict[str, Any]:
    """The game's own defaults; SettingsError naming the known games if there is no such game."""
    from azjobs.games import get_game

    try:
        found = get_game(game)
    except ValueError as e:  # get_game's message already names the known games
        raise SettingsError(f"setting game: {e}") from None
    return dict(found.default_settings)


def resolve(
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings for a new run: defaults < game defaults < file < environment < flags."""
    return from_given(given(config_file, flags, environ))


def from_given(merged: Mapping[str, Any]) -> Settings:
    """Settings for a new run from the values `given` found: the game's defaults below them."""
    game = merged.get("game", Settings.game)
    values = _coerce(game_defaults(game), f"defaults of game {game}")
    values.update(merged)
    return Settings(**values)


def given(
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The values the file, the environment and the flags set, each checked, later layers winning."""
    environ = os.environ if environ is None else environ
    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(_coerce(_load_toml(Path(config_file), "config file"), str(config_file)))
    env = {name: environ[ENV_PREFIX + name.upper()] for name in FIELD_TYPES if ENV_PREFIX + name.upper() in environ}
    layers.append(_coerce(env, "the environment", text=True))
    layers.append(_coerce({k: v for k, v in (flags or {}).items() if v is not None}, "the flags", text=True))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


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
    return _coerce(values, source, text=True)


def for_process(settings: Settings, command: str, values: Mapping[str, Any], source: str = "the flags") -> Settings:
    """The run's settings with this process's own values of its process settings (the run's stay as stored)."""
    return settings.replace(**own_values(command, values, source))


def overridden(own: Settings, run: Settings) -> str:
    """The process settings `own` holds other than the run's, e.g. `inference_batch_size 8 (the run's: 64)`."""
    return ", ".join(
        f"{name} {_shown(getattr(own, name))} (the run's: {_shown(getattr(run, name))})"
        for name in PROCESS_SETTINGS
        if getattr(own, name) != getattr(run, name)
    )


def _load_toml(path: Path, what: str) -> dict[str, Any]:
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


def read_file(run_dir: Path) -> Settings | None:
    """The settings in `<run_dir>/settings.toml`; None if there is none, SettingsError if it is damaged."""
    path = Path(run_dir) / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        values = _load_toml(path, "the run's settings file")
        if "game" not in values:
            raise SettingsError(f"the run's settings file {path} names no game")
        return Settings.from_mapping(values, str(path))
    except SettingsError as e:
        raise SettingsError(
            f"{e}; the file is damaged: restore it from a backup, or, while the run's Redis "
            f"still holds them, print them with `azjobs settings --run-dir {run_dir} "
            f"--redis-url URL`"
        ) from None


def write_file(run_dir: Path, settings: Settings) -> None:
    """Write `<run_dir>/settings.toml` atomically (temporary name, then rename)."""
    from azjobs.storage.atomic import write_atomic

    write_atomic(Path(run_dir) / SETTINGS_FILE, to_toml(settings).encode())


def create_file(run_dir: Path, settings: Settings) -> Settings:
    """Write `<run_dir>/settings.toml` unless it exists; the settings the file holds then (of two
    creators at once, exactly one writes it, and both return what it wrote)."""
    from azjobs.storage.atomic import write_with

    write_with(Path(run_dir) / SETTINGS_FILE, lambda tmp: tmp.write_text(to_toml(settings)), replace=False)
    stored = read_file(run_dir)
    assert stored is not None  # it landed, ours or the other creator's
    return stored


def publish(redis: "Redis", run: str, run_dir: Path, settings: Settings) -> Settings:
    """Store a new run's settings; an existing run keeps the settings it was created with.

    Atomic against a second creator: the first SET NX in Redis wins, the file is written (once) from
    the winner, and the file, the run's lasting copy, is what Redis holds in the end and what is returned."""
    stored = read_file(run_dir)
    if stored is None:
        redis.set(keys.settings(run), settings.to_json(), nx=True)
        raw = redis.get(keys.settings(run))
        stored = create_file(run_dir, Settings.from_json(raw) if raw is not None else settings)
    raw = redis.get(keys.settings(run))
    if raw is None or Settings.from_json(raw) != stored:
        redis.set(keys.settings(run), stored.to_json())  # e.g. another Redis' creator wrote the file first
    from azjobs.storage import marker

    marker.ensure(redis, run, Path(run_dir))  # workers refuse a run folder without the run's marker
    return stored


def fetch(redis: "Redis", run: str, run_dir: Path | None = None) -> Settings | None:
    """The run's settings from Redis, else from the storage root (restoring Redis); None if no run."""
    raw = redis.get(keys.settings(run))
    if raw is not None:
        try:
            return Settings.from_json(raw)
        except SettingsError as e:
            raise SettingsError(f"{e} (key {keys.settings(run)})") from None
    stored = read_file(run_dir) if run_dir is not None else None
    if stored is not None:
        redis.set(keys.settings(run), stored.to_json(), nx=True)
    return stored
