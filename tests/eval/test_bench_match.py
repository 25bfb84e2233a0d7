"""`azjobs bench match`: two players here, without Redis; one JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.games import get_game
from azjobs.net import build_model, to_bytes
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic


def bench_match(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, ["bench", "match", *args])
    lines = result.stdout.strip().splitlines()
    return result.exit_code, (json.loads(lines[-1]) if result.exit_code == 0 else {}), result.stderr


def test_perfect_play_never_loses_to_random() -> None:
    code, result, _ = bench_match("alphabeta:9", "random", "--game", "tictactoe", "--games", "19")
    assert code == 0
    assert result["games"] == 20 and result["a"] == "alphabeta:9" and result["b"] == "random"
    assert result["b_wins"] == 0  # full-depth minimax is perfect tic-tac-toe
    assert result["a_wins"] + result["draws"] == 20 and result["a_wins"] > 10
    assert result["a_first_wins"] + result["a_first_draws"] == 10  # half the games with each colour


def test_the_runs_newest_weights_by_default(tmp_path: Path) -> None:
    game, settings = get_game("tictactoe"), Settings(game="tictactoe", net_blocks=1, net_channels=8)
    run_dir = tmp_path / "ttt"
    write_file(run_dir, settings)
    for version in (1, 3):
        torch.manual_seed(version)
        data = to_bytes(build_model(game, settings), {"version": version, "game": game.name})
        write_atomic(run_dir / WEIGHTS_DIR / file_name(version), data)
    code, result, _ = bench_match("--run-dir", str(run_dir), "--games", "4", "--sims", "2")
    assert code == 0 and result["a"] == "net:3" and result["b"] == "random" and result["games"] == 4
    code, result, _ = bench_match("net:1", "oneply", "--run-dir", str(run_dir), "--games", "2", "--sims", "0")
    assert code == 0 and result["a"] == "net:1" and result["b"] == "oneply"


def test_a_network_player_without_a_run_is_a_one_line_error() -> None:
    code, _, stderr = bench_match("net", "random", "--game", "tictactoe")
    assert code != 0 and stderr.strip().splitlines() == ["Error: player net needs --run-dir (a trained run)"]


def tiny_run(run_dir: Path, versions: tuple[int, ...], game_name: str = "tictactoe") -> None:
    game, settings = get_game(game_name), Settings(game=game_name, net_blocks=1, net_channels=8)
    write_file(run_dir, settings)
    for version in versions:
        torch.manual_seed(version)
        data = to_bytes(build_model(game, settings), {"version": version, "game": game.name})
        write_atomic(run_dir / WEIGHTS_DIR / file_name(version), data)


def test_two_runs_play_each_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_run(tmp_path / "a", (1, 2))
    tiny_run(tmp_path / "b", (5,))
    code, result, _ = bench_match("net:1", "net@b", "--run-dir", str(tmp_path / "a"), "--games", "2", "--sims", "0")
    assert code == 0 and result["a"] == "net:1" and result["b"] == "net@b:5"  # b: beside --run-dir
    monkeypatch.chdir(tmp_path)
    code, result, _ = bench_match("net@a:2", "net@b:5", "--games", "2", "--sims", "2")  # from here, no --run-dir
    assert code == 0 and (result["a"], result["b"], result["games"]) == ("net@a:2", "net@b:5", 2)


def test_another_runs_players_are_checked(tmp_path: Path) -> None:
    tiny_run(tmp_path / "a", (1,))
    tiny_run(tmp_path / "c4", (1,), "connect4")
    code, _, stderr = bench_match("net:1", "net@c4", "--run-dir", str(tmp_path / "a"), "--games", "2")
    assert code != 0 and "plays connect4, not tictactoe" in stderr
    code, _, stderr = bench_match("net@nowhere", "random", "--run-dir", str(tmp_path / "a"), "--games", "2")
    assert code != 0 and "no run at nowhere (no settings.toml)" in stderr
    code, _, stderr = bench_match(f"net@{tmp_path / 'a'}:3", "random", "--games", "2")
    assert code != 0 and "has no weights version 3" in stderr
