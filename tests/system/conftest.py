"""System tests: the whole system as real processes (the cluster scripts, the fault tests that kill and
restart roles, hosts in network namespaces, the soaks, the learning test, the benchmarks that start
processes), each seconds to minutes. Every test under tests/system is marked `system` here
(`python -m pytest -q -m "not slow and not system"` is the fast tier that leaves them out)."""

from __future__ import annotations

from pathlib import Path

import pytest

SYSTEM = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SYSTEM in Path(item.path).parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """The shared storage root, holding the run folder `tt`."""
    root = tmp_path / "storage"
    (root / "tt").mkdir(parents=True)
    return root
