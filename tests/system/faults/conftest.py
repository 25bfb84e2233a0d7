"""Fault tests run the roles as real processes (`python -m azjobs ...`) against a real Redis, and break them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Roles


@pytest.fixture
def roles(tmp_path: Path, redis_url: str) -> Iterator[Roles]:
    started = Roles(tmp_path / "logs", redis_url)
    try:
        yield started
    finally:
        started.stop_all()
