"""System tests: the whole system as real processes (the cluster scripts, hosts in network namespaces, the
system soak), each a few minutes; marked `system` (`pytest -m "not system"` leaves them out)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """The shared storage root, holding the run folder `tt`."""
    root = tmp_path / "storage"
    (root / "tt").mkdir(parents=True)
    return root
