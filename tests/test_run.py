"""The run: its stored settings (the file and Redis, damaged or lost), and a role that joins before the run
exists waits, saying so once, then gets its settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from azjobs import keys
from azjobs.errors import AzjobsError
from azjobs.run import SETTINGS_FILE, Run, fetch, publish, read_file, resolve, write_file
from azjobs.settings import Settings, SettingsError
from azjobs.storage import marker
from azjobs.storage.weights import WeightStore


def test_a_run_that_does_not_exist_yet_is_waited_for(redis_client: redis.Redis, tmp_path: Path) -> None:
    run = Run("later", tmp_path / "later", redis_client)
    assert run.settings() is None
    said: list[str] = []
    created = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if not created.is_set():  # the trainer creates the run while the role waits
            created.set()
            publish(redis_client, "later", tmp_path / "later", Settings(game="tictactoe"))

    found = run.wait(say, poll_s=0.01)
    assert found.game == "tictactoe"
    assert said == ["waiting for run 'later' to be created (start `azjobs train` or `azjobs run` for it)"]
    assert run.settings() == found


def test_file_round_trip_and_publish_keeps_first_settings(tmp_path: Path, redis_client) -> None:
    first = resolve(flags={"game": "tictactoe"}, environ={})
    write_file(tmp_path, first)
    assert read_file(tmp_path) == first
    run_dir = tmp_path / "run1"
    assert publish(redis_client, "run1", run_dir, first) == first
    later = first.replace(batch_size=7)
    assert publish(redis_client, "run1", run_dir, later) == first
    redis_client.flushall()  # Redis lost: the storage root restores it
    assert fetch(redis_client, "run1", run_dir) == first
    assert fetch(redis_client, "nope", tmp_path / "nope") is None


# A damaged run: its settings.toml or its Redis value.


@pytest.mark.parametrize(
    "content, message",
    [
        (b'game = "connect4"\nbatch_size = [\n', "is not valid TOML"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"", "names no game"),
        (b'game = "connect4"\nbatch_size = "lots"\n', "setting batch_size in .* must be an integer"),
        (b'game = "connect4"\nc_puct = 0.0\n', "setting c_puct in .* must be a number > 0"),
    ],
)
def test_a_damaged_run_settings_file_names_the_file_and_the_fix(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / SETTINGS_FILE).write_bytes(content)
    with pytest.raises(SettingsError, match=message) as caught:
        read_file(tmp_path)
    text = str(caught.value)
    assert str(tmp_path / SETTINGS_FILE) in text and "restore it from a backup" in text
    assert f"azjobs settings --run-dir {tmp_path} --redis-url URL" in text and "\n" not in text


def test_damaged_settings_in_redis_are_named(redis_client) -> None:
    redis_client.set(keys.settings("r"), b"{not json")
    with pytest.raises(SettingsError, match="settings stored in Redis are not a JSON object"):
        fetch(redis_client, "r")
    redis_client.set(keys.settings("r"), '{"c_puct": -1}')
    with pytest.raises(SettingsError, match="c_puct in the run's settings in Redis must be a number > 0"):
        fetch(redis_client, "r")


def test_joining_a_run_that_does_not_exist_is_a_one_line_error(redis_client: redis.Redis, tmp_path: Path) -> None:
    run = Run("absent", tmp_path / "absent", redis_client)
    with pytest.raises(AzjobsError, match="no run 'absent' in this Redis: start `azjobs train`") as caught:
        run.join()
    assert "\n" not in str(caught.value)
    created = run.create(Settings(game="tictactoe"))
    assert run.join() == created == Run.at(tmp_path / "absent", redis_client).settings()


def test_a_run_lost_by_redis_is_restored_from_the_storage_root(redis_client: redis.Redis, tmp_path: Path) -> None:
    run = Run("lost", tmp_path / "lost", redis_client)
    settings = run.create(Settings(game="tictactoe"))
    token = marker.read(tmp_path / "lost")
    store = WeightStore(redis_client, "lost", tmp_path / "lost")
    said: list[str] = []
    assert not run.restore(settings, store, said.append)  # Redis still knows it
    redis_client.flushall()
    assert run.restore(settings, store, said.append)
    assert redis_client.get(keys.settings("lost")) is not None
    assert redis_client.get(keys.marker("lost")).decode() == token  # the folder's marker, not a new one
    assert said == [
        "Redis had lost run 'lost' (restarted empty?): restored its settings, weights version None "
        "and 0 replay shards from the storage root"
    ]
