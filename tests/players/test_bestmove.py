"""`azjobs bestmove`: one answer per input line, in order; bad lines named by number, the rest still answered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.errors import AzjobsError
from azjobs.eval.records import version_at
from azjobs.games import get_game
from azjobs.net import build_model, to_bytes
from azjobs.players import bestmove
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic

GAME = get_game("tictactoe")
SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8, num_simulations=8)
# Each line with what must come back: a legal move for the position, or an error naming the line.
LINES = [
    ("", None),
    ("5", None),
    ("0", "error: line 3: '0': '0' is not a cell; write 1-9, row by row from the top left"),
    ("10", "error: line 4: '10': '0' is not a cell; write 1-9, row by row from the top left"),
    ("1 1", "error: line 5: '1 1': move 2 (1) is illegal"),
    ("5193", None),  # compact: 5 1 9 3
    ("1 4 2 5 3", "error: line 7: '1 4 2 5 3': the game is already over"),  # X has the top row
    ("1 4 2 5 3 6", "error: line 8: '1 4 2 5 3 6': move 6 (6) is illegal"),  # a move after the game is over
    ("  5 1  ", None),
    ("x", "error: line 10: 'x': 'x' is not a cell; write 1-9, row by row from the top left"),
]


def publish_to_disk(run_dir: Path, version: int) -> None:
    """What the trainer leaves on the storage root: settings.toml and weights/vNNNNNN.safetensors."""
    torch.manual_seed(version)
    data = to_bytes(build_model(GAME, SETTINGS), {"version": version, "game": GAME.name})
    write_atomic(run_dir / WEIGHTS_DIR / file_name(version), data)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("storage") / "ttt"
    write_file(folder, SETTINGS)
    for version in (1, 2):
        publish_to_disk(folder, version)
    return folder


@pytest.fixture(scope="module")
def agent(run_dir: Path) -> bestmove.Agent:
    return bestmove.load_agent(run_dir)


def check_answers(lines: list[str], answers: list[str]) -> None:
    assert len(answers) == len(lines)
    for (line, error), got in zip(LINES, answers):
        if error is not None:
            assert got == error
            continue
        state = GAME.state_after(GAME.parse_moves(line))
        assert GAME.legal_mask(state[None])[0, GAME.parse_action(got)], (line, got)


def test_loads_the_newest_weights(agent: bestmove.Agent) -> None:
    assert agent.version == 2 and agent.game is GAME and agent.settings == SETTINGS


@pytest.mark.parametrize("sims", [0, 1, 8])
@pytest.mark.parametrize("chunk", [1, 3, bestmove.CHUNK])
def test_one_answer_per_line_in_order(agent: bestmove.Agent, sims: int, chunk: int) -> None:
    lines = [line for line, _ in LINES]
    check_answers(lines, list(bestmove.answer(agent, iter(lines), sims, chunk=chunk)))


def policy_move(agent: bestmove.Agent, line: str) -> str:
    """The oracle for 0 simulations: the legal move with the network's highest logit."""
    state = GAME.state_after(GAME.parse_moves(line))
    logits, _ = agent.evaluator.evaluate(GAME.encode(state[None]))
    return GAME.action_to_str(int(np.where(GAME.legal_mask(state[None]), logits, -np.inf)[0].argmax()))


def test_zero_simulations_play_the_network_policy(agent: bestmove.Agent) -> None:
    lines = ["", "5", "5193", "1 2", "9 8 7 6"]
    assert list(bestmove.answer(agent, lines, 0)) == [policy_move(agent, line) for line in lines]


def test_a_search_finds_the_win(agent: bestmove.Agent) -> None:
    # X to move with 1 2 on the top row (O threatens 6): 3 wins at once.
    assert list(bestmove.answer(agent, ["1 4 2 5"], 200)) == ["3"]


def test_empty_input_gives_no_output(agent: bestmove.Agent) -> None:
    assert list(bestmove.answer(agent, [], 8)) == []


def test_command_reads_stdin(run_dir: Path) -> None:
    lines = [line for line, _ in LINES]
    for extra in ([], ["--sims", "0"]):
        stdin = "\n".join(lines) + "\n"
        result = CliRunner().invoke(main, ["bestmove", "--run-dir", str(run_dir), *extra], input=stdin)
        assert result.exit_code == 0, result.output
        check_answers(lines, result.stdout.splitlines())


def test_run_without_weights(tmp_path: Path) -> None:
    write_file(tmp_path / "fresh", SETTINGS)
    with pytest.raises(AzjobsError, match="has no published weights yet: train it first"):
        bestmove.load_agent(tmp_path / "fresh")


def test_folder_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(AzjobsError, match=r"no run at .* \(no settings.toml\)"):
        bestmove.load_agent(tmp_path)


def test_run_of_an_unknown_game(tmp_path: Path) -> None:
    run_dir = tmp_path / "odd"
    publish_to_disk(run_dir, 1)
    (run_dir / "settings.toml").write_text('game = "chess"\n')
    with pytest.raises(AzjobsError, match="unknown game 'chess'; choose one of: connect4, .*tictactoe"):
        bestmove.load_agent(run_dir)


def test_a_baseline_player_needs_only_the_game() -> None:
    lines = [line for line, _ in LINES]
    result = CliRunner().invoke(
        main, ["bestmove", "--game", "tictactoe", "--player", "alphabeta:9"], input="\n".join(lines) + "\n"
    )
    assert result.exit_code == 0, result.output
    check_answers(lines, result.stdout.splitlines())
    # X to move with 1 2 on the top row: 3 wins at once; O to move must then block 3 too.
    result = CliRunner().invoke(
        main, ["bestmove", "--game", "tictactoe", "--player", "oneply"], input="1 4 2 5\n1 4 2\n"
    )
    assert result.stdout.splitlines() == ["3", "3"]


def test_a_version_of_the_run(run_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["bestmove", "--run-dir", str(run_dir), "--player", "net:1", "--sims", "0"], input="5\n"
    )
    assert result.exit_code == 0, result.output
    agent = bestmove.load_agent(run_dir)
    agent.evaluator.load((run_dir / WEIGHTS_DIR / file_name(1)).read_bytes())
    assert result.stdout.splitlines() == [policy_move(agent, "5")]


@pytest.mark.parametrize(
    "args, error",
    [
        (["--player", "alphabeta:2"], "player alphabeta:2 needs --game"),
        (["--player", "net", "--game", "tictactoe"], "player net needs --run-dir"),
        (["--player", "best", "--game", "tictactoe"], "unknown player 'best'"),
        (["--player", "random", "--game", "chess"], "unknown game 'chess'"),
    ],
)
def test_player_mistakes(args: list[str], error: str) -> None:
    result = CliRunner().invoke(main, ["bestmove", *args], input="5\n")
    assert result.exit_code != 0 and error in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_missing_version(run_dir: Path) -> None:
    result = CliRunner().invoke(main, ["bestmove", "--run-dir", str(run_dir), "--player", "net:9"], input="5\n")
    assert result.exit_code != 0 and "has no weights version 9" in result.stderr


def test_load_agent_takes_a_version(run_dir: Path) -> None:
    assert bestmove.load_agent(run_dir, version=1).version == 1
    with pytest.raises(AzjobsError, match="has no weights version 7"):
        bestmove.load_agent(run_dir, version=7)


def test_version_at_picks_the_newest_published_by_then(tmp_path: Path) -> None:
    model = build_model(GAME, SETTINGS)
    for version, seconds in ((1, 0.0), (2, 100.0), (3, 250.0)):
        data = to_bytes(model, {"version": version, "game": GAME.name, "train_seconds": seconds})
        write_atomic(tmp_path / WEIGHTS_DIR / file_name(version), data)
    assert version_at(tmp_path, 0) == (1, 0.0)
    assert version_at(tmp_path, 5) == (3, 250.0) and version_at(tmp_path, 2) == (2, 100.0)
    assert version_at(tmp_path / "nothing", 10) is None


def test_redis_url_is_accepted_unused_and_hidden(run_dir: Path) -> None:
    """Scripts pass --redis-url to every command: bestmove takes it (nothing listens there) and
    leaves it out of --help, since it reads the storage root alone."""
    lines = [line for line, _ in LINES]
    result = CliRunner().invoke(
        main,
        ["bestmove", "--run-dir", str(run_dir), "--redis-url", "redis://127.0.0.1:1/0"],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    check_answers(lines, result.stdout.splitlines())
    assert "--redis-url" not in CliRunner().invoke(main, ["bestmove", "--help"]).stdout
