"""Settings: the layers, every field's type and range, docs/settings.md."""

import dataclasses
import math
import re
from pathlib import Path

import pytest

from azjobs import settings as S
from azjobs.cli import settings_doc
from azjobs.games import BUILTIN_MODULES, load_games
from azjobs.run import resolve

DOCS_PAGE = Path(__file__).parent.parent / "docs" / "settings.md"


def test_precedence_defaults_game_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('game = "tictactoe"\nbatch_size = 64\nnum_simulations = 20\nc_puct = 2.0\n')
    env = {"AZJOBS_NUM_SIMULATIONS": "30", "AZJOBS_C_PUCT": "3.0"}
    got = resolve(config, flags={"c_puct": 4.0, "seed": None}, environ=env)
    assert got.game == "tictactoe"
    assert got.net_channels == 32  # tic-tac-toe's own default beats the global one
    assert got.batch_size == 64  # file beats game default
    assert got.num_simulations == 30  # environment beats file
    assert got.c_puct == 4.0  # flags beat environment
    assert got.seed == 0  # a flag left out changes nothing


def test_unknown_and_badly_typed_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(S.SettingsError, match="unknown setting 'bogus'"):
        resolve(flags={"bogus": 1}, environ={})
    with pytest.raises(S.SettingsError, match="batch_size in the environment must be an integer >= 1 .*'lots'"):
        resolve(environ={"AZJOBS_BATCH_SIZE": "lots"})
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = [")
    with pytest.raises(S.SettingsError, match="not valid TOML"):
        resolve(bad, environ={})


def test_requests_bigger_than_servers_accept_are_refused() -> None:
    assert S.Settings(games_in_flight=200, max_request_positions=100).games_in_flight == 200  # groups of 100
    with pytest.raises(S.SettingsError, match="games_in_flight .* requests of 101 positions.*max_request_positions"):
        S.Settings(games_in_flight=201, max_request_positions=100)


def test_reuse_tree_reads_as_a_boolean() -> None:
    assert resolve(environ={"AZJOBS_REUSE_TREE": "false"}).reuse_tree is False
    assert resolve(flags={"reuse_tree": True}, environ={}).reuse_tree is True


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"full_search_prob": 0.0}, r"full_search_prob must be a number in \(0, 1\]"),
        ({"full_search_prob": 1.5}, r"full_search_prob must be a number in \(0, 1\]"),
        ({"num_simulations": 20, "cheap_simulations": 30}, "cheap_simulations .30. exceeds num_simulations .20."),
        ({"gumbel_considered": 0}, "gumbel_considered must be an integer >= 1"),
        ({"fpu_reduction": -0.1}, "fpu_reduction must be a number >= 0"),
        ({"forced_playouts": -1.0}, "forced_playouts must be a number >= 0"),
        ({"resign_value": -1.5}, r"resign_value must be a number in \[-1, 1\]"),
        ({"resign_playout_share": 2.0}, r"resign_playout_share must be a number in \[0, 1\]"),
    ],
)
def test_strength_settings_are_checked(changes: dict, message: str) -> None:
    with pytest.raises(S.SettingsError, match=message):
        S.Settings(**changes)


def test_strength_settings_default_to_plain_alphazero() -> None:
    from azjobs.jobs.configs import search_config

    config = search_config(S.Settings())
    assert not config.gumbel and config.full_search_prob == 1 and config.fpu_reduction == 0
    assert config.forced_playouts == 0 and S.Settings().resign_value == -1


@pytest.mark.parametrize("text", ["1000", "1000:x", "0:1e-4", "2000:1e-4,1000:3e-4", "1000:1e-4,1000:3e-5", "1000:0"])
def test_a_bad_learning_rate_schedule_is_named(text: str) -> None:
    with pytest.raises(S.SettingsError, match="learning_rate_schedule"):
        S.Settings(learning_rate_schedule=text)


def test_learning_rate_follows_its_schedule() -> None:
    settings = S.Settings(learning_rate=1e-3, learning_rate_schedule=" 100:3e-4, 250:1e-4 ")
    rates = [S.learning_rate_at(settings, step) for step in (0, 99, 100, 249, 250, 10_000)]
    assert rates == [1e-3, 1e-3, 3e-4, 3e-4, 1e-4, 1e-4]
    assert S.learning_rate_at(S.Settings(learning_rate=2e-3), 10_000) == 2e-3  # no schedule: constant


# Every field's type and range (issue 13: NaN, out-of-range values and misspelt booleans used to pass).

NUMBERS = [name for name, kind in S.FIELD_TYPES.items() if kind in (int, float)]


def out_of_range(name: str) -> list[float]:
    """Values just beyond each bound of the setting's range."""
    spec, step = S.SPECS[name], 1 if S.FIELD_TYPES[name] is int else 1e-6
    found = []
    if spec.at_least is not None:
        found.append(spec.at_least - step)
    if spec.above is not None:
        found.append(spec.above)
    if spec.at_most is not None:
        found.append(spec.at_most + step)
    return [S.FIELD_TYPES[name](value) for value in found]


def test_every_numeric_setting_has_a_range_and_every_setting_a_meaning() -> None:
    for name in S.FIELD_TYPES:
        assert S.DOCS[name].strip(), name
    for name in NUMBERS:
        assert out_of_range(name), f"{name} has no range"


def test_the_defaults_and_every_games_defaults_validate() -> None:
    assert S.Settings.from_json(S.Settings().to_json()) == S.Settings()  # each default passes its own check
    games = [name for name, game in load_games().items() if type(game).__module__ in BUILTIN_MODULES]
    assert {"connect4", "tictactoe", "othello", "gomoku"} <= set(games)
    for game in games:
        got = resolve(flags={"game": game}, environ={})
        for name, value in load_games()[game].default_settings.items():
            assert getattr(got, name) == value, (game, name)


@pytest.mark.parametrize("name, value", [(name, value) for name in NUMBERS for value in out_of_range(name)])
def test_a_value_out_of_range_names_setting_value_and_range(name: str, value: float) -> None:
    allowed = S.SPECS[name].allowed(S.FIELD_TYPES[name])
    with pytest.raises(S.SettingsError) as caught:
        S.Settings(**{name: value})
    assert str(caught.value).startswith(f"setting {name} must be {allowed} ")
    assert str(caught.value).endswith(f"got {value!r}") and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", [name for name, kind in S.FIELD_TYPES.items() if kind is float])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(name: str, value: float) -> None:
    with pytest.raises(S.SettingsError, match=f"setting {name} must be a number"):
        S.Settings(**{name: value})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"learning_rate": 0.0}, r"learning_rate must be a number > 0"),
        ({"c_puct": -1.0}, r"c_puct must be a number > 0"),
        ({"dirichlet_alpha": 0.0}, r"dirichlet_alpha must be a number > 0"),
        ({"dirichlet_fraction": 1.5}, r"dirichlet_fraction must be a number in \[0, 1\]"),
        ({"inference_wait_ms": math.nan}, r"inference_wait_ms must be a number in \[0, 1000\] .*got nan"),
        ({"selfplay_queue_depth": 0}, r"selfplay_queue_depth must be an integer >= 1"),
        ({"max_train_per_position": 0.0}, r"max_train_per_position must be a number > 0"),
        ({"min_replay_positions": 0}, r"min_replay_positions must be an integer >= 1"),
        ({"seed": -1}, r"seed must be an integer >= 0"),
        ({"gating_threshold": 0.0}, r"gating_threshold must be a number in \(0, 1\]"),
        ({"min_train_per_position": 5.0}, r"min_train_per_position \(5.0\) must be at most max_train_per_position"),
        ({"replay_buffer_size": 100}, r"min_replay_positions \(4000\) exceeds replay_buffer_size \(100\)"),
    ],
)
def test_the_values_that_used_to_pass_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(S.SettingsError, match=message):
        S.Settings(**changes)


@pytest.mark.parametrize(
    "name, value",
    [
        ("batch_size", "64"),
        ("batch_size", 64.0),
        ("batch_size", True),
        ("c_puct", "1.5"),
        ("c_puct", False),
        ("gating", 1),
        ("gating", "true"),
        ("reuse_tree", None),
        ("game", 4),
        ("eval_opponents", ["random"]),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(name: str, value: object) -> None:
    with pytest.raises(S.SettingsError, match=f"setting {name} must be"):
        S.Settings(**{name: value})


def test_an_integer_where_a_number_is_asked_for_becomes_a_float() -> None:
    got = S.Settings(c_puct=2, inference_wait_ms=0)
    assert type(got.c_puct) is float and got.c_puct == 2.0 and type(got.inference_wait_ms) is float


@pytest.mark.parametrize(
    "text, value", [("true", True), ("TRUE", True), ("1", True), (" false ", False), ("False", False), ("0", False)]
)
def test_booleans_in_text_take_true_false_1_or_0(text: str, value: bool) -> None:
    assert resolve(environ={"AZJOBS_GATING": text}).gating is value
    assert resolve(flags={"gating": text}, environ={}).gating is value


@pytest.mark.parametrize("text", ["ture", "yes", "no", "on", "2", ""])
def test_a_misspelt_boolean_is_an_error_naming_the_spellings(text: str) -> None:
    with pytest.raises(S.SettingsError) as caught:
        resolve(environ={"AZJOBS_REUSE_TREE": text})
    assert str(caught.value) == (
        f"setting reuse_tree in the environment must be true, false, 1 or 0 (default true), got {text!r}"
    )


@pytest.mark.parametrize(
    "line, message",
    [
        ('gating = "true"', "setting gating in .* must be true or false"),
        ("gating = 1", "setting gating in .* must be true or false"),
        ('batch_size = "64"', "setting batch_size in .* must be an integer >= 1"),
        ("num_simulations = 100.0", "setting num_simulations in .* must be an integer >= 1 .*got 100.0"),
        ("num_simulations = 2.5", "setting num_simulations in .* must be an integer"),
        ("inference_wait_ms = nan", "setting inference_wait_ms in .* must be a number in \\[0, 1000\\] .*got nan"),
        ("learning_rate = -inf", "setting learning_rate in .* must be a number > 0"),
        ('eval_opponents = "random,net"', "eval_opponents: 'net' is a network.*\\(in .*c.toml\\)"),
        ("[search]\nc_puct = 2.0", "unknown setting 'search' in .*c.toml; `azjobs settings` prints them all"),
    ],
)
def test_a_bad_config_file_names_the_file_the_setting_and_the_range(tmp_path: Path, line: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(line + "\n")
    with pytest.raises(S.SettingsError, match=message) as caught:
        resolve(config, environ={})
    assert str(config) in str(caught.value)


def test_numbers_from_the_environment_are_checked_too() -> None:
    with pytest.raises(S.SettingsError, match="inference_wait_ms in the environment must be .*got nan"):
        resolve(environ={"AZJOBS_INFERENCE_WAIT_MS": "nan"})
    with pytest.raises(S.SettingsError, match="selfplay_queue_depth in the flags must be an integer >= 1"):
        resolve(flags={"selfplay_queue_depth": "0"}, environ={})
    assert resolve(environ={"AZJOBS_REPLAY_BUFFER_SIZE": "300_000"}).replay_buffer_size == 300_000


# docs/settings.md is rendered from the code.


def test_docs_settings_page_is_up_to_date() -> None:
    assert DOCS_PAGE.exists() and DOCS_PAGE.read_text() == settings_doc.markdown(), (
        f"docs/settings.md is out of date: run `{settings_doc.DOC_COMMAND}` and commit it"
    )


def test_the_docs_settings_table_lists_every_setting_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", DOCS_PAGE.read_text(), flags=re.MULTILINE))
    for field in dataclasses.fields(S.Settings):
        value = field.default
        shown = '""' if value == "" else str(value).lower() if isinstance(value, bool) else str(value)
        assert rows.get(field.name, "").strip() == shown, field.name


def test_the_docs_page_shows_every_games_own_defaults() -> None:
    text = DOCS_PAGE.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| setting | default | connect4"))
    games = [cell.strip() for cell in header.strip("|").split("|")][2:]
    rows = {
        line.split("|")[1].strip(" `"): [c.strip() for c in line.strip("|").split("|")][2:]
        for line in text[text.index(header) :].splitlines()[2:]
        if line.startswith("| `")
    }
    for column, game in enumerate(games):
        for name, value in load_games()[game].default_settings.items():
            assert rows[name][column] == str(value), (game, name)
    for heading in (
        "## Where a setting comes from",
        "## Settings belong to the run",
        "## The replay window and the train/play ratio",
    ):
        assert heading in text


# Process settings: a role's own values, never the run's.


def test_a_process_takes_its_own_values_of_its_process_settings_only() -> None:
    run = S.Settings(inference_batch_size=64)
    own = S.for_process(run, "gpu-serve", {"inference_batch_size": "512", "inference_wait_ms": 4})
    assert (own.inference_batch_size, own.inference_wait_ms) == (512, 4.0) and run.inference_batch_size == 64
    assert own.replace(inference_batch_size=64, inference_wait_ms=run.inference_wait_ms) == run
    assert S.overridden(own, run) == "inference_batch_size 512 (the run's: 64), inference_wait_ms 4.0 (the run's: 2.0)"
    with pytest.raises(S.SettingsError, match="publish_every_steps is not one `azjobs gpu-serve` takes for itself"):
        S.for_process(run, "gpu-serve", {"publish_every_steps": 5})
    with pytest.raises(S.SettingsError, match="net_blocks is not one `azjobs train` takes for itself: it is fixed"):
        S.for_process(run, "train", {"net_blocks": 2})
    with pytest.raises(S.SettingsError, match=r"inference_wait_ms in --wait-ms must be a number in \[0, 1000\]"):
        S.own_values("gpu-serve", {"inference_wait_ms": "2000"}, "--wait-ms")


def test_every_process_setting_is_a_setting_of_a_role_with_that_flag() -> None:
    from click.testing import CliRunner

    from azjobs.cli import main

    assert set(S.PROCESS_SETTINGS) <= set(S.FIELD_TYPES)
    for name, (command, flag) in S.PROCESS_SETTINGS.items():
        text = CliRunner().invoke(main, [command, "--help"], terminal_width=200).stdout
        assert f"{flag} " in text, (command, flag)
    serve = CliRunner().invoke(main, ["gpu-serve", "--help"], terminal_width=200).stdout
    assert "AZJOBS_INFERENCE_BATCH_SIZE" in serve and "AZJOBS_INFERENCE_WAIT_MS" in serve


def test_the_docs_mark_the_process_settings() -> None:
    text = DOCS_PAGE.read_text()
    table = text[text.index("## Every setting") : text.index("## Per-game defaults")]
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]* \| [^|]* \| (.*) \|$", table, flags=re.MULTILINE))
    for name in S.FIELD_TYPES:
        marked = "*a process setting: `azjobs " in rows[name]
        assert marked == (name in S.PROCESS_SETTINGS), name
    assert "## Settings of a process" in text
