"""One settings object per run: defaults < game defaults < TOML file < AZJOBS_* env < flags.

The process that creates a run (`azjobs train` or `azjobs run`) resolves the settings
once and stores them in Redis and in `<run_dir>/settings.toml`; every other process of
the run reads them back from there, so machines never disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from azjobs import keys
from azjobs.errors import writing

if TYPE_CHECKING:
    from redis import Redis

ENV_PREFIX = "AZJOBS_"
SETTINGS_FILE = "settings.toml"


class SettingsError(ValueError):
    """A setting has an unknown name or a value of the wrong type."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of a run. Each field is documented in the README's settings table."""

    game: str = "connect4"
    seed: int = 0
    # Network: a residual tower with policy and value heads.
    net_blocks: int = 4
    net_channels: int = 64
    # Search (PUCT MCTS).
    num_simulations: int = 100
    c_puct: float = 1.5
    dirichlet_alpha: float = 1.0
    dirichlet_fraction: float = 0.25
    temperature_moves: int = 10  # moves sampled in proportion to visits, then the most visited
    reuse_tree: bool = True  # keep the chosen child's subtree for the next move's search
    # Strength per compute (README "Strength per compute"); the defaults are plain AlphaZero.
    gumbel: bool = False  # Gumbel root search with sequential halving; pi' as the policy target
    gumbel_considered: int = 16  # root actions sequential halving starts with (mctx's default)
    gumbel_c_visit: float = 50.0  # sigma(q) = (c_visit + max visits) * c_scale * q
    gumbel_c_scale: float = 1.0
    full_search_prob: float = 1.0  # playout cap randomization: the share of moves given a full search
    cheap_simulations: int = 0  # simulations of the other moves (0: num_simulations // 4)
    fpu_reduction: float = 0.0  # first-play urgency: unvisited Q = parent Q - this * sqrt(visited prior)
    fpu_reduction_root: float = 0.0  # the same at the root
    forced_playouts: float = 0.0  # KataGo's k: forced root playouts and policy target pruning (0: off)
    resign_value: float = -1.0  # resign below this root and best-child value (-1: never)
    resign_playout_share: float = 0.1  # share of games played out to count false resignations
    # Self-play.
    games_per_job: int = 1024  # 8x games_in_flight: the job's tail, with ever fewer games left, stays short
    games_in_flight: int = 128  # games a job searches at once, in two groups whose requests alternate
    weight_sync_interval: int = 2  # games between weight checks in a worker evaluating in-process
    selfplay_queue_depth: int = 4  # self-play jobs the trainer keeps queued
    num_workers: int = 0  # workers `azjobs run` starts; 0: cores - 1, at least 1
    # Inference server.
    inference_batch_size: int = 64  # one group's request: a batch never waits for the group being searched
    inference_wait_ms: float = 2.0  # longest a partial batch waits for more requests
    max_request_positions: int = 4096  # larger requests are dropped as oversized
    # Training.
    replay_buffer_size: int = 200_000
    min_replay_positions: int = 4_000
    batch_size: int = 256
    learning_rate: float = 1e-3
    learning_rate_schedule: str = ""  # "STEP:RATE,...": from each training step on, that rate (Leela's drops)
    weight_decay: float = 1e-4
    publish_every_steps: int = 100
    checkpoint_every_steps: int = 500
    max_train_per_position: float = 4.0  # mean times each position is trained on
    min_train_per_position: float = 0.0  # below it the trainer stops queueing self-play (0: never)
    weights_kept_in_redis: int = 5
    # Replay window growing with the data (KataGo's power law); 0 rows: a fixed window.
    replay_window_min_rows: int = 0
    replay_window_exponent: float = 0.65
    replay_window_expand: float = 0.4
    # Evaluation, ratings and gating.
    eval_every_versions: int = 10  # evaluate versions 1, 1 + N, 1 + 2N, ... (0: never)
    eval_games: int = 20
    eval_opponents: str = "previous,random,oneply,alphabeta:4"
    eval_simulations: int = 100
    eval_opening_moves: int = 2
    eval_positions: str = ""  # labelled positions file scored for each evaluated version
    gating: bool = False
    gating_threshold: float = 0.55

    def __post_init__(self) -> None:
        positive = ("net_blocks", "net_channels", "num_simulations", "games_per_job", "games_in_flight",
                    "inference_batch_size",
                    "max_request_positions", "replay_buffer_size", "batch_size", "publish_every_steps",
                    "checkpoint_every_steps", "weights_kept_in_redis", "weight_sync_interval", "gumbel_considered")
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"setting {name} must be at least 1, got {getattr(self, name)}")
        non_negative = ("eval_every_versions", "eval_simulations", "eval_opening_moves", "replay_window_min_rows",
                        "cheap_simulations", "fpu_reduction", "fpu_reduction_root", "forced_playouts",
                        "gumbel_c_visit")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise SettingsError(f"setting {name} must be 0 or more, got {getattr(self, name)}")
        if self.eval_games < 2:
            raise SettingsError(
                f"setting eval_games must be at least 2 (one opening with both colours), got {self.eval_games}"
            )
        if not 0 < self.gating_threshold <= 1:
            raise SettingsError(
                f"setting gating_threshold is a share of the points, in (0, 1]; got {self.gating_threshold}"
            )
        if not 0 < self.replay_window_exponent <= 1 or self.replay_window_expand <= 0:
            raise SettingsError(
                "replay_window_exponent must be in (0, 1] and replay_window_expand above 0 "
                f"(got {self.replay_window_exponent} and {self.replay_window_expand}); KataGo uses 0.65 and 0.4"
            )
        if not 0 <= self.min_train_per_position <= self.max_train_per_position:
            raise SettingsError(
                f"min_train_per_position ({self.min_train_per_position}) must be between 0 and "
                f"max_train_per_position ({self.max_train_per_position})"
            )
        _check_opponents(self.eval_opponents)
        rate_schedule(self.learning_rate_schedule)  # SettingsError naming the bad entry
        self._check_search()
        if -(-self.games_in_flight // 2) > self.max_request_positions:
            raise SettingsError(
                f"games_in_flight ({self.games_in_flight}) makes requests of {-(-self.games_in_flight // 2)} positions, "
                f"above max_request_positions ({self.max_request_positions}): servers would drop them; "
                f"lower games_in_flight or raise max_request_positions"
            )
        if self.min_replay_positions > self.replay_buffer_size:
            raise SettingsError(
                f"min_replay_positions ({self.min_replay_positions}) exceeds replay_buffer_size "
                f"({self.replay_buffer_size}): the trainer would wait forever; lower it or raise the buffer"
            )

    def _check_search(self) -> None:
        if not 0 < self.full_search_prob <= 1:
            raise SettingsError(f"setting full_search_prob is a probability in (0, 1] (1: every move a full search), "
                                f"got {self.full_search_prob}")
        if self.cheap_simulations > self.num_simulations:
            raise SettingsError(f"cheap_simulations ({self.cheap_simulations}) exceeds num_simulations "
                                f"({self.num_simulations}): a cheap search cannot be the bigger one")
        if self.gumbel_c_scale <= 0:
            raise SettingsError(f"setting gumbel_c_scale must be above 0, got {self.gumbel_c_scale}")
        if not -1 <= self.resign_value <= 1 or not 0 <= self.resign_playout_share <= 1:
            raise SettingsError(f"resign_value must be in [-1, 1] (-1: never resign) and resign_playout_share in "
                                f"[0, 1]; got {self.resign_value} and {self.resign_playout_share}")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Settings:
        return cls.from_mapping(json.loads(text), source="stored run settings")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str) -> Settings:
        return cls(**_coerce(values, source))


def _check_opponents(text: str) -> None:
    from azjobs.players import PlayerSpec  # players import the search, which imports this module

    for item in opponent_list(text):
        if item == PREVIOUS:
            continue
        try:
            spec = PlayerSpec.parse(item)
        except ValueError as e:
            raise SettingsError(f"setting eval_opponents: {e}, or previous") from None
        if not spec.is_baseline:
            raise SettingsError(f"setting eval_opponents: {item!r} is a network; name baselines or `previous`")


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
                f"setting learning_rate_schedule: {item!r} is not STEP:RATE (e.g. \"20000:3e-4,40000:1e-4\")"
            ) from None
    steps = [step for step, _ in pairs]
    if any(step < 1 for step in steps) or steps != sorted(set(steps)) or any(rate <= 0 for _, rate in pairs):
        raise SettingsError(f"setting learning_rate_schedule: steps must rise from 1 and rates be above 0, "
                            f"got {text!r}")
    return tuple(pairs)


def learning_rate_at(settings: Settings, step: int) -> float:
    """The learning rate of training step `step` (0-based: the steps taken before it)."""
    rate = settings.learning_rate
    for start, scheduled in rate_schedule(settings.learning_rate_schedule):
        if step >= start:
            rate = scheduled
    return rate


PREVIOUS = "previous"  # in eval_opponents: the version evaluated before


def opponent_list(text: str) -> list[str]:
    """The comma-separated entries of eval_opponents."""
    return [item.strip() for item in text.split(",") if item.strip()]


# One line per setting: the CLI's --help and the README's settings table say the same.
DOCS: dict[str, str] = {
    "game": "the game to learn (`azjobs games` lists them)",
    "seed": "seed of the run's random numbers",
    "net_blocks": "residual blocks in the network",
    "net_channels": "channels of each convolution",
    "num_simulations": "MCTS simulations per move in self-play",
    "c_puct": "PUCT exploration constant",
    "dirichlet_alpha": "Dirichlet noise concentration at the root",
    "dirichlet_fraction": "share of Dirichlet noise in the root priors",
    "temperature_moves": "moves of each game chosen in proportion to visits; later moves take the most visited",
    "reuse_tree": "keep the searched subtree of the move played for the next search (its visits count toward num_simulations)",
    "gumbel": "Gumbel search: sequential halving over Gumbel-sampled root actions, the improved policy pi' as "
              "the policy target, no Dirichlet noise, no tree reuse",
    "gumbel_considered": "root actions Gumbel search samples and halves (mctx: 16)",
    "gumbel_c_visit": "c_visit of Gumbel's sigma(q) = (c_visit + max visits) * c_scale * q (mctx: 50)",
    "gumbel_c_scale": "c_scale of Gumbel's sigma(q)",
    "full_search_prob": "playout cap randomization: the share of self-play moves searched with num_simulations; "
                        "the others get cheap_simulations without noise and are no policy targets (1: all full)",
    "cheap_simulations": "simulations of a cheap search (0: num_simulations // 4)",
    "fpu_reduction": "first-play urgency: an unvisited child's Q is its parent's mean value less this times the "
                     "square root of the visited children's priors (0: the mean)",
    "fpu_reduction_root": "fpu_reduction at the root",
    "forced_playouts": "KataGo's forced playouts: noisy root children get sqrt(k * prior * visits) visits, and "
                       "the policy target is pruned of them; this is k (0: off; KataGo: 2)",
    "resign_value": "self-play resigns when the root value and the most visited child's value are both below "
                    "this (-1: never)",
    "resign_playout_share": "share of self-play games that never resign, played out to count false resignations",
    "games_per_job": "games one self-play job plays (and stores as one replay shard)",
    "games_in_flight": "games a self-play job searches at once, in two groups whose requests alternate; "
                       "a finished game's slot takes the job's next game",
    "weight_sync_interval": "games between weight checks in a worker that evaluates in-process (--evaluator local)",
    "selfplay_queue_depth": "self-play jobs the trainer keeps waiting in the queue",
    "num_workers": "workers `azjobs run` starts (0: cores - 1, at least 1)",
    "inference_batch_size": "positions gpu-serve gathers before a forward pass",
    "inference_wait_ms": "longest gpu-serve waits to fill a batch",
    "max_request_positions": "positions per request above which a request is dropped as oversized",
    "replay_buffer_size": "newest positions the trainer samples from (the replay window)",
    "min_replay_positions": "positions needed before training starts",
    "batch_size": "positions per training minibatch",
    "learning_rate": "AdamW learning rate",
    "learning_rate_schedule": "learning rate drops, STEP:RATE,... (e.g. 20000:3e-4,40000:1e-4): from training "
                              "step STEP on, RATE (empty: learning_rate throughout)",
    "weight_decay": "AdamW weight decay",
    "publish_every_steps": "training steps between published weights versions",
    "checkpoint_every_steps": "training steps between checkpoints (and one on exit)",
    "max_train_per_position": "mean times each position is trained on; the trainer waits for new games beyond it",
    "min_train_per_position": "the trainer stops queueing self-play while it has trained fewer times per position "
                              "than this (0: never), so slow training does not waste games",
    "weights_kept_in_redis": "newest weights versions kept in Redis (all stay on the storage root)",
    "replay_window_min_rows": "KataGo's growing window: with N positions, sample the newest "
                              "c*(1 + expand*((N/c)^exponent - 1)/exponent), c this setting, at most "
                              "replay_buffer_size (0: always replay_buffer_size)",
    "replay_window_exponent": "exponent of the growing replay window (KataGo: 0.65)",
    "replay_window_expand": "new window rows per new position where the window starts to grow (KataGo: 0.4)",
    "eval_every_versions": "the trainer evaluates weights versions 1, 1+N, 1+2N, ... (0: never)",
    "eval_games": "games per evaluation match (half with each colour, from paired random openings)",
    "eval_opponents": "who each evaluated version plays, comma-separated: previous (the version evaluated "
                      "before) and baselines: random, oneply, alphabeta:DEPTH, mcts:SIMULATIONS",
    "eval_simulations": "search simulations of network players in evaluation (accuracy also with 0)",
    "eval_opening_moves": "random moves that open each evaluation game",
    "eval_positions": "labelled positions file (JSON lines, see README) scored for each evaluated version; "
                      "copied into <run_dir>/evals/ when the run is created",
    "gating": "serve a new weights version to self-play only once it beats the served one",
    "gating_threshold": "share of the points a new version needs against the served one to pass the gate",
}

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
FIELD_TYPES: dict[str, type] = {f.name: _TYPES[str(f.type)] for f in fields(Settings)}


def _coerce(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in FIELD_TYPES:
            raise SettingsError(f"unknown setting {name!r} in {source}; see the settings table in the README")
        out[name] = _convert(name, value, source)
    return out


def _convert(name: str, value: Any, source: str) -> Any:
    kind = FIELD_TYPES[name]
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int and isinstance(value, str):
            return int(value.replace("_", ""))
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name} in {source} must be {kind.__name__}, got {value!r}") from None


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
    environ = os.environ if environ is None else environ
    layers: list[dict[str, Any]] = []
    if config_file is not None:
        try:
            with open(config_file, "rb") as f:
                layers.append(_coerce(tomllib.load(f), str(config_file)))
        except OSError as e:
            raise SettingsError(f"cannot read config file {config_file}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"config file {config_file} is not valid TOML: {e}") from None
    env = {
        name: environ[ENV_PREFIX + name.upper()] for name in FIELD_TYPES if ENV_PREFIX + name.upper() in environ
    }
    layers.append(_coerce(env, "the environment"))
    layers.append(_coerce({k: v for k, v in (flags or {}).items() if v is not None}, "the flags"))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    game = merged.get("game", Settings.game)
    values = _coerce(game_defaults(game), f"defaults of game {game}")
    values.update(merged)
    return Settings(**values)


def to_toml(settings: Settings) -> str:
    lines = ["# azjobs run settings: written once when the run was created.\n"]
    for name, value in settings.to_dict().items():
        lines.append(f"{name} = {json.dumps(value)}\n")
    return "".join(lines)


def read_file(run_dir: Path) -> Settings | None:
    path = Path(run_dir) / SETTINGS_FILE
    if not path.exists():
        return None
    with open(path, "rb") as f:
        return Settings.from_mapping(tomllib.load(f), str(path))


def write_file(run_dir: Path, settings: Settings) -> None:
    """Write `<run_dir>/settings.toml` atomically (temporary name, then rename)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{SETTINGS_FILE}.tmp.{os.getpid()}"
    try:
        with writing(run_dir / SETTINGS_FILE):
            tmp.write_text(to_toml(settings))
        os.replace(tmp, run_dir / SETTINGS_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def create_file(run_dir: Path, settings: Settings) -> Settings:
    """Write `<run_dir>/settings.toml` unless it exists; the settings the file holds then (of two
    creators at once, exactly one writes it, and both return what it wrote)."""
    from azjobs.storage.atomic import land_new, temp_path

    path = Path(run_dir) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with writing(path):
            tmp.write_text(to_toml(settings))
            land_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
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
        return Settings.from_json(raw)
    stored = read_file(run_dir) if run_dir is not None else None
    if stored is not None:
        redis.set(keys.settings(run), stored.to_json(), nx=True)
    return stored


def wait(redis: "Redis", run: str, run_dir: Path | None, say: Callable[[str], None], poll_s: float = 1.0) -> Settings:
    """Block until the run exists, saying so once; then its settings."""
    said = False
    while True:
        found = fetch(redis, run, run_dir)
        if found is not None:
            return found
        if not said:
            say(f"waiting for run {run!r} to be created (start `azjobs train` or `azjobs run` for it)")
            said = True
        time.sleep(poll_s)
