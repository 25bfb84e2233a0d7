"""The Settings: every tunable of a run with its default, meaning and range, and the checks of each value."""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from azjobs.settings.spec import SettingsError, Spec, setting
from azjobs.settings.syntax import check_cycle, check_eval_opponents, check_growth, grow_schedule, rate_schedule


@dataclass(frozen=True)
class Settings:
    """Every tunable of a run, each with its meaning and range (docs/settings.md is rendered from them)."""

    game: str = setting("connect4", "the game to learn (`azjobs games` lists them)", text="a game's name")
    seed: int = setting(0, "seed of the run's random numbers", at_least=0)
    # Network: a residual tower with policy and value heads.
    net_blocks: int = setting(4, "residual blocks in the network", at_least=1)
    net_channels: int = setting(64, "channels of each convolution", at_least=1)
    net_grow_schedule: str = setting(
        "",
        "grow the network during the run: at each POSITIONS made, the trainer switches to BLOCKSxCHANNELS, "
        'initialised to compute what the smaller one did, e.g. "200000:6x96,600000:8x128" (empty: never)',
        text="POSITIONS:BLOCKSxCHANNELS, comma-separated, or empty",
    )
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
    # Schedules over the run and the averaged network (docs/training.md); each off by default.
    learning_rate_cycle: str = setting(
        "constant",
        "the learning rate's cycle over learning_rate (and its drops): constant; one_cycle, once up to "
        "learning_rate_peak times it and back down over learning_rate_period steps, then constant; "
        "cyclic, that triangle again every learning_rate_period steps",
        text="constant, one_cycle or cyclic",
    )
    learning_rate_period: int = setting(
        2000, "training steps of one learning-rate cycle (one_cycle, cyclic)", at_least=2
    )
    learning_rate_peak: float = setting(
        5.0, "the learning rate at a cycle's middle, in multiples of the scheduled one", at_least=1
    )
    simulations_start: int = setting(
        0,
        "progressive simulations: self-play jobs queued before any position was made search with this "
        "many, rising linearly with the positions made to num_simulations (0: num_simulations throughout)",
        at_least=0,
    )
    simulations_ramp_positions: int = setting(
        500_000, "positions made over which the simulations rise from simulations_start", at_least=1
    )
    ema_decay: float = setting(
        0.0,
        "the published versions are an exponential moving average of the weights, each step's decay "
        "min(ema_decay, (1 + step) / (10 + step)) (0: the trained weights themselves)",
        at_least=0,
        below=1,
    )
    # Training targets (docs/training.md); all 0: AlphaZero's own targets and uniform sampling.
    value_target_q_weight: float = setting(
        0.0,
        "value target (1 - w) x z + w x q, z the game's result and q the search's root value for the player "
        "to move, w this setting (0: z alone)",
        at_least=0,
        at_most=1,
    )
    merge_duplicates: float = setting(
        0.0,
        "identical positions in the replay window share their targets: each takes w x their mean + (1 - w) "
        "x its own, w this setting (0: off; the Kiel thesis: 0.8)",
        at_least=0,
        at_most=1,
    )
    soft_policy_weight: float = setting(
        0.0,
        "weight of KataGo's soft policy loss: the policy head's softmax at soft_policy_temperature against "
        "the policy target raised to 1 / that temperature, renormalised (0: off; KataGo: 8, on a head of its own)",
        at_least=0,
    )
    soft_policy_temperature: float = setting(4.0, "temperature T of the soft policy target (KataGo: 4)", at_least=1)
    policy_surprise_weight: float = setting(
        0.0,
        "share of the replay window's sampling weight given in proportion to each position's policy surprise "
        "(KL of its target from the prior), the rest uniformly (0: uniform; KataGo: 0.5)",
        at_least=0,
        at_most=1,
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
    eval_budget: float = setting(
        0.05,
        "the most of the workers' time evaluation jobs may take over the run: the trainer queues a scheduled "
        "evaluation only while the share, with its expected cost, stays within it (1: no limit)",
        above=0,
        at_most=1,
    )
    eval_retire_score: float = setting(
        0.95,
        "later versions stop playing a baseline once the newest versions' lower confidence bound of their "
        "score against it, over 80 games, is above this (1: never)",
        above=0,
        at_most=1,
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
        if self.simulations_start > self.num_simulations:
            raise SettingsError(
                f"simulations_start ({self.simulations_start}) exceeds num_simulations ({self.num_simulations}): "
                "the simulations only rise; lower simulations_start (0: off)"
            )
        check_growth(self)
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
        return cls(**coerce(values, source, text=text))


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
    return SettingsError(f"setting {name}{where} must be {allowed} (default {shown(DEFAULTS[name])}), got {value!r}")


def check_value(name: str, value: Any, source: str | None = None) -> Any:
    """`value` as setting `name` holds it (an int where a float is asked for becomes one); SettingsError
    naming the setting, the value and the values allowed if it has the wrong type or is out of range."""
    kind = FIELD_TYPES[name]
    if kind is bool or kind is str:
        if type(value) is not kind:
            raise _bad(name, value, source)
        if name == "eval_opponents" and isinstance(value, str):
            _in_source(check_eval_opponents, value, source)
        elif name == "learning_rate_schedule" and isinstance(value, str):
            _in_source(rate_schedule, value, source)
        elif name == "learning_rate_cycle" and isinstance(value, str):
            _in_source(check_cycle, value, source)
        elif name == "net_grow_schedule" and isinstance(value, str):
            _in_source(grow_schedule, value, source)
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


def coerce(values: Mapping[str, Any], source: str, *, text: bool = False) -> dict[str, Any]:
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


def shown(value: Any) -> str:
    """A value as the docs show it: booleans as TOML writes them, the empty string as \"\"."""
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)
