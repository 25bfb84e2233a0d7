"""docs/your-own-game.md works as written: its files, taken from the page, pass their own tests and register.

The guide's code blocks that start with a file-name comment (`# domineering.py`) are written to a
folder as they stand; a user copying them gets exactly what is checked here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "your-own-game.md"
BLOCK = re.compile(r"```(?:python|toml)\n# ([\w.-]+\.(?:py|toml))\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's `my-domineering/` folder, made from the guide."""
    path = tmp_path_factory.mktemp("my-domineering")
    for name, body in BLOCK.findall(GUIDE.read_text()):
        (path / name).write_text(f"# {name}\n{body}")
    return path


def run(args: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_") and k != "PYTHONPATH"}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=folder, env={**clean, **env})


def test_the_guide_gives_the_three_files(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["domineering.py", "pyproject.toml", "test_domineering.py"]


def test_the_guides_tests_pass_on_the_guides_game(folder: Path) -> None:
    done = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_domineering.py"],
        folder,
        PYTHONPATH=str(folder),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_the_game_registers_as_the_guide_says(folder: Path) -> None:
    done = run([sys.executable, "-m", "azjobs", "games"], folder, PYTHONPATH=str(folder), AZJOBS_GAMES="domineering")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("domineering"))
    assert line in GUIDE.read_text()  # the guide quotes the line exactly
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["azjobs.games"] == {"domineering": "domineering"}
    assert project["tool"]["setuptools"]["py-modules"] == ["domineering"]


def test_the_figures_quoted_for_choosing_settings(folder: Path) -> None:
    code = (
        "from azjobs.games.testing import check_random_playouts\nfrom domineering import DOMINEERING\n"
        "summary = check_random_playouts(DOMINEERING, n_games=1000)\n"
        "print(f'{summary.mean_legal_moves():.1f} {summary.lengths.mean():.1f}')\n"
    )
    done = run([sys.executable, "-c", code], folder, PYTHONPATH=str(folder))
    assert done.returncode == 0, done.stderr
    legal, length = done.stdout.split()
    assert f"{legal} legal moves on average and {length} moves a game" in " ".join(GUIDE.read_text().split())
