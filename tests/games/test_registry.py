"""Games of one's own are found the documented ways: AZJOBS_GAMES and `azjobs.games` entry points.

Each case runs `azjobs` in a fresh process, as a user would, so the registry of this one stays clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from azjobs.games import GAMES, UnknownGame, get_game, load_games, register
from azjobs.games.tictactoe import TicTacToe

# A game of one's own: tic-tac-toe under another name, in a module outside azjobs.
NOUGHTS = """
from azjobs.games import register
from azjobs.games.tictactoe import TicTacToe


class Noughts(TicTacToe):
    name = "noughts"
    default_settings = {**TicTacToe.default_settings, "num_simulations": 7}


NOUGHTS = register(Noughts())
"""


def azjobs(args: list[str], path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_") and k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "azjobs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=path,
        env={**clean, "PYTHONPATH": str(path), **env},
    )


def listed(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line for line in done.stdout.splitlines()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "noughts_game.py").write_text(NOUGHTS)
    return tmp_path


def test_builtin_games_are_registered() -> None:
    games = load_games()
    assert {"connect4", "tictactoe"} <= set(games)
    assert get_game("tictactoe") is games["tictactoe"]


def test_module_named_in_the_environment(folder: Path) -> None:
    assert "noughts" not in listed(azjobs(["games"], folder))
    games = listed(azjobs(["games"], folder, AZJOBS_GAMES="noughts_game"))
    assert games["noughts"].split()[1:] == ["planes", "2x3x3,", "9", "actions,", "8", "symmetries", "(noughts_game)"]
    assert "connect4" in games and "tictactoe" in games
    # Every command finds it: the trainer gets past the settings and on to Redis.
    done = azjobs(
        ["train", "--game", "noughts", "--run-dir", "r", "--redis-url", "redis://127.0.0.1:1/0"],
        folder,
        AZJOBS_GAMES=" json , noughts_game",
    )  # spaces and a module that registers nothing are fine
    assert done.returncode == 1 and "cannot reach Redis" in done.stderr, done.stderr


@pytest.mark.parametrize("value", ["noughts_game", "noughts_game:NOUGHTS"])
def test_entry_point_of_an_installed_package(folder: Path, value: str) -> None:
    # What `pip install` of a package declaring [project.entry-points."azjobs.games"] leaves behind.
    dist = folder / "noughts-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: noughts\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[azjobs.games]\nnoughts = {value}\n")
    assert "noughts" in listed(azjobs(["games"], folder))


def test_settings_come_from_the_games_defaults(folder: Path) -> None:
    code = "from azjobs.run import resolve; print(resolve(flags={'game': 'noughts'}).num_simulations)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder), "AZJOBS_GAMES": "noughts_game"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"


def test_missing_module_is_a_one_line_error(folder: Path) -> None:
    done = azjobs(["games"], folder, AZJOBS_GAMES="noughts_gam")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: cannot import game module 'noughts_gam' named in AZJOBS_GAMES: "
        "no module 'noughts_gam' (install its package, or add its folder to PYTHONPATH)"
    ]
    done = azjobs(["train", "--game", "noughts", "--run-dir", "r"], folder)
    assert done.returncode == 1
    assert "unknown game 'noughts'; choose one of: connect4" in done.stderr
    assert "docs/your-own-game.md" in done.stderr


def test_a_broken_import_inside_the_module_shows_its_traceback(folder: Path) -> None:
    (folder / "broken_game.py").write_text("import no_such_dependency\n")
    done = azjobs(["games"], folder, AZJOBS_GAMES="broken_game")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "No module named 'no_such_dependency'" in done.stderr


def test_two_games_of_one_name_are_refused() -> None:
    class Impostor(TicTacToe):
        pass

    with pytest.raises(Exception, match="two games are called 'tictactoe'"):
        register(Impostor())
    assert type(GAMES["tictactoe"]) is TicTacToe
    assert register(GAMES["tictactoe"]) is GAMES["tictactoe"]  # registering the same game again is harmless


def test_unknown_game_is_a_value_error_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown game 'chess'; choose one of: connect4, .*tictactoe"):
        get_game("chess")
    with pytest.raises(UnknownGame):
        get_game("chess")
