"""`azjobs play`: the board drawn, human moves in the game's notation (bad ones asked again), the agent's
move with its evaluation, the right outcome; through stdin as a terminal user types it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.games import get_game
from azjobs.net import build_model, to_bytes
from azjobs.players import bestmove, play
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic

GAME = get_game("tictactoe")
SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8, num_simulations=16)
MOVE = re.compile(r"^azjobs plays (\d) \(its evaluation: ([+-]\d\.\d\d) for itself")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("storage") / "ttt"
    write_file(folder, SETTINGS)
    torch.manual_seed(3)
    data = to_bytes(build_model(GAME, SETTINGS), {"version": 4, "game": GAME.name})
    write_atomic(folder / WEIGHTS_DIR / file_name(4), data)
    return folder


def replay(lines: list[str], typed: list[str], human_first: bool) -> np.ndarray:
    """The final state, rebuilt from the transcript: the agent's moves as printed, the human's as typed
    (skipping those the game refused)."""
    state = GAME.initial_state()
    typed = list(typed)
    for i, line in enumerate(lines):
        found = MOVE.match(line)
        if found:
            state = GAME.play(state[None], np.array([GAME.parse_action(found.group(1))]))[0]
        elif line.startswith("your move"):
            answer = typed.pop(0)
            refused = i + 1 < len(lines) and lines[i + 1].startswith(("not a move", answer + " is not legal"))
            if not refused and answer != "q":
                state = GAME.play(state[None], np.array([GAME.parse_action(answer)]))[0]
    return state


@pytest.mark.parametrize("second", [False, True])
def test_a_whole_game_through_stdin(run_dir: Path, second: bool) -> None:
    typed = ["0", "5", "5", "x", *"12346789"]
    args = ["play", "--run-dir", str(run_dir), "--sims", "16"] + (["--second"] if second else [])
    result = CliRunner().invoke(main, args, input="\n".join(typed) + "\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "weights version 4, 16 simulations per move" in lines[0]
    assert lines[1:4] == [". . .", ". . .", ". . ."]  # the empty board, drawn
    first_turn = next(line for line in lines if line.startswith(("your move", "azjobs plays")))
    assert first_turn.startswith("azjobs plays" if second else "your move (1 2 3 4 5 6 7 8 9)")
    assert "not a move: '0' is not a cell" in result.stdout
    assert "5 is not legal here; legal moves:" in result.stdout
    moves = [MOVE.match(line) for line in lines if MOVE.match(line)]
    assert moves and all(-1.0 <= float(m.group(2)) <= 1.0 for m in moves)

    final = replay(lines, typed, human_first=not second)
    assert GAME.is_terminal(final)
    outcome = lines[-1]
    value = GAME.terminal_value(final[None])[0]  # for the player to move: -1 means the last mover won
    last_mover_is_human = (int(final[9]) % 2 == 1) != second
    expected = "draw" if value == 0 else ("you won" if last_mover_is_human else "azjobs won")
    assert outcome == f"game over: {expected}"


def test_quit_and_end_of_input(run_dir: Path) -> None:
    for typed in ("q\n", ""):
        result = CliRunner().invoke(main, ["play", "--run-dir", str(run_dir), "--sims", "0"], input=typed)
        assert result.exit_code == 0 and "game over" not in result.stdout


def test_evaluation_of_finished_games(run_dir: Path) -> None:
    agent = bestmove.load_agent(run_dir)
    won = GAME.state_after([0, 3, 1, 4, 2])  # X has the top row: X, who just moved, won
    assert play.evaluation(agent, won) == 1.0
    drawn = GAME.state_after([0, 1, 2, 4, 3, 5, 7, 6, 8])
    assert play.evaluation(agent, drawn) == 0.0
    ongoing = GAME.state_after([4])
    assert -1.0 <= play.evaluation(agent, ongoing) <= 1.0


def test_play_without_weights(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["play", "--run-dir", str(tmp_path / "none")], input="5\n")
    assert result.exit_code == 1 and "no run at" in result.stderr


def test_redis_url_is_accepted_unused_and_hidden(run_dir: Path) -> None:
    """As for bestmove: play reads the storage root alone, so --redis-url (nothing listens there) is
    taken and left out of --help."""
    result = CliRunner().invoke(
        main, ["play", "--run-dir", str(run_dir), "--redis-url", "redis://127.0.0.1:1/0"], input="q\n"
    )
    assert result.exit_code == 0, result.output
    assert "weights version 4" in result.stdout.splitlines()[0]
    assert "--redis-url" not in CliRunner().invoke(main, ["play", "--help"]).stdout
