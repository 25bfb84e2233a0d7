"""The run object: a role that joins before the run exists waits, saying so once, then gets its settings."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from azjobs import settings as run_settings
from azjobs.run import Run
from azjobs.settings import Settings


def test_a_run_that_does_not_exist_yet_is_waited_for(redis_client: redis.Redis, tmp_path: Path) -> None:
    run = Run("later", tmp_path / "later", redis_client)
    assert run.settings() is None
    said: list[str] = []
    created = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if not created.is_set():  # the trainer creates the run while the role waits
            created.set()
            run_settings.publish(redis_client, "later", tmp_path / "later", Settings(game="tictactoe"))

    found = run.wait(say, poll_s=0.01)
    assert found.game == "tictactoe"
    assert said == ["waiting for run 'later' to be created (start `azjobs train` or `azjobs run` for it)"]
    assert run.settings() == found
