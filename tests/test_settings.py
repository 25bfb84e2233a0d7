import dataclasses
import re
from pathlib import Path

import pytest

from azjobs import settings as S


def test_precedence_defaults_game_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('game = "tictactoe"\nbatch_size = 64\nnum_simulations = 20\nc_puct = 2.0\n')
    env = {"AZJOBS_NUM_SIMULATIONS": "30", "AZJOBS_C_PUCT": "3.0"}
    got = S.resolve(config, flags={"c_puct": 4.0, "seed": None}, environ=env)
    assert got.game == "tictactoe"
    assert got.net_channels == 32  # tic-tac-toe's own default beats the global one
    assert got.batch_size == 64  # file beats game default
    assert got.num_simulations == 30  # environment beats file
    assert got.c_puct == 4.0  # flags beat environment
    assert got.seed == 0  # a flag left out changes nothing


def test_unknown_and_badly_typed_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(S.SettingsError, match="unknown setting 'bogus'"):
        S.resolve(flags={"bogus": 1}, environ={})
    with pytest.raises(S.SettingsError, match="batch_size .* must be int"):
        S.resolve(environ={"AZJOBS_BATCH_SIZE": "lots"})
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = [")
    with pytest.raises(S.SettingsError, match="not valid TOML"):
        S.resolve(bad, environ={})


def test_file_round_trip_and_publish_keeps_first_settings(tmp_path: Path, redis_client) -> None:
    first = S.resolve(flags={"game": "tictactoe"}, environ={})
    S.write_file(tmp_path, first)
    assert S.read_file(tmp_path) == first
    run_dir = tmp_path / "run1"
    assert S.publish(redis_client, "run1", run_dir, first) == first
    later = first.replace(batch_size=7)
    assert S.publish(redis_client, "run1", run_dir, later) == first
    redis_client.flushall()  # Redis lost: the storage root restores it
    assert S.fetch(redis_client, "run1", run_dir) == first
    assert S.fetch(redis_client, "nope", tmp_path / "nope") is None


def test_requests_bigger_than_servers_accept_are_refused() -> None:
    assert S.Settings(games_in_flight=200, max_request_positions=100).games_in_flight == 200  # groups of 100
    with pytest.raises(S.SettingsError, match="games_in_flight .* requests of 101 positions.*max_request_positions"):
        S.Settings(games_in_flight=201, max_request_positions=100)


def test_reuse_tree_reads_as_a_boolean() -> None:
    assert S.resolve(environ={"AZJOBS_REUSE_TREE": "false"}).reuse_tree is False
    assert S.resolve(flags={"reuse_tree": True}, environ={}).reuse_tree is True


@pytest.mark.parametrize("changes, message", [
    ({"full_search_prob": 0.0}, "full_search_prob is a probability"),
    ({"full_search_prob": 1.5}, "full_search_prob is a probability"),
    ({"num_simulations": 20, "cheap_simulations": 30}, "cheap_simulations .30. exceeds num_simulations .20."),
    ({"gumbel_considered": 0}, "gumbel_considered must be at least 1"),
    ({"fpu_reduction": -0.1}, "fpu_reduction must be 0 or more"),
    ({"forced_playouts": -1.0}, "forced_playouts must be 0 or more"),
    ({"resign_value": -1.5}, "resign_value must be in"),
    ({"resign_playout_share": 2.0}, "resign_playout_share"),
])
def test_strength_settings_are_checked(changes: dict, message: str) -> None:
    with pytest.raises(S.SettingsError, match=message):
        S.Settings(**changes)


def test_strength_settings_default_to_plain_alphazero() -> None:
    from azjobs.search import SearchConfig

    config = SearchConfig.from_settings(S.Settings())
    assert not config.gumbel and config.full_search_prob == 1 and config.fpu_reduction == 0
    assert config.forced_playouts == 0 and S.Settings().resign_value == -1


@pytest.mark.parametrize("text", ["1000", "1000:x", "0:1e-4", "2000:1e-4,1000:3e-4", "1000:1e-4,1000:3e-5",
                                  "1000:0"])
def test_a_bad_learning_rate_schedule_is_named(text: str) -> None:
    with pytest.raises(S.SettingsError, match="learning_rate_schedule"):
        S.Settings(learning_rate_schedule=text)


def test_learning_rate_follows_its_schedule() -> None:
    settings = S.Settings(learning_rate=1e-3, learning_rate_schedule=" 100:3e-4, 250:1e-4 ")
    rates = [S.learning_rate_at(settings, step) for step in (0, 99, 100, 249, 250, 10_000)]
    assert rates == [1e-3, 1e-3, 3e-4, 3e-4, 1e-4, 1e-4]
    assert S.learning_rate_at(S.Settings(learning_rate=2e-3), 10_000) == 2e-3  # no schedule: constant


def test_the_readme_settings_table_lists_every_setting_with_its_default() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", readme, flags=re.MULTILINE))
    for field in dataclasses.fields(S.Settings):
        value = field.default
        shown = '""' if value == "" else str(value).lower() if isinstance(value, bool) else str(value)
        assert rows.get(field.name, "").strip() == shown, field.name
