"""Scoring players on labelled positions: the file format, weak and strong accuracy, phases, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from labels import labelled_lines

from azjobs.cli import main
from azjobs.errors import AzjobsError
from azjobs.eval import records
from azjobs.eval.positions import load_positions
from azjobs.eval.strength import measure, random_weak_accuracy, score
from azjobs.games import get_game
from azjobs.net import build_model, to_bytes
from azjobs.players import make_player
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic

C4 = get_game("connect4")
TTT = get_game("tictactoe")
C4_SAMPLE = Path(__file__).parent / "data" / "c4_sample.jsonl"  # every 9th line of the public Connect Four set


@pytest.fixture(scope="module")
def ttt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "ttt.jsonl"
    path.write_text("\n".join(labelled_lines(300)) + "\n")
    return path


def test_the_connect4_labels_agree_with_our_rules() -> None:
    """Where a move wins at once by our rules, the solver's labels call it the quickest win:
    the format (1-based columns, scores left to right) is read as the solver wrote it."""
    labels = load_positions(C4_SAMPLE, C4)
    checked = 0
    for state, scores in zip(labels.states, labels.scores):
        legal = np.flatnonzero(C4.legal_mask(state[None])[0])
        assert np.array_equal(np.flatnonzero(~np.isnan(scores)), legal)
        children = C4.play(np.repeat(state[None], len(legal), 0), legal)
        for action in legal[C4.terminal_value(children) == -1]:  # the mover has just won
            assert scores[action] == np.nanmax(scores) > 0
            checked += 1
    assert checked >= 5


def test_random_player_scores_its_expectation() -> None:
    labels = load_positions(C4_SAMPLE, C4)
    expected = random_weak_accuracy(labels)
    assert 0.35 < expected < 0.5
    player = make_player("random", C4)
    shares = [measure(labels, player, np.random.default_rng(seed)).overall.weak / len(labels) for seed in range(40)]
    assert np.mean(shares) == pytest.approx(expected, abs=0.015)


def test_baselines_rank_by_strength_on_connect4() -> None:
    labels = load_positions(C4_SAMPLE, C4)
    weak = {
        spec: measure(labels, make_player(spec, C4), np.random.default_rng(0)).overall.weak
        for spec in ("random", "oneply", "alphabeta:3")
    }
    assert weak["random"] < weak["oneply"] < weak["alphabeta:3"]


def test_perfect_play_is_fully_correct(ttt_file: Path) -> None:
    labels = load_positions(ttt_file, TTT)
    perfect = measure(labels, make_player("alphabeta:9", TTT), np.random.default_rng(0))
    assert perfect.overall.weak == perfect.overall.strong == len(labels) == 300
    assert sum(p.positions for p in perfect.phases.values()) == 300
    random = measure(labels, make_player("random", TTT), np.random.default_rng(0))
    assert random.overall.strong < random.overall.weak < 300


def test_weak_strong_and_phases_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "two.jsonl"
    path.write_text(
        # X to move; 3 wins quickest (score 3), 5 wins slower (1), the others draw or lose.
        json.dumps({"moves": "1 4 2 7", "scores": [None, None, 3, None, 1, 0, None, -2, 0]})
        + "\n\n"
        + json.dumps({"moves": "5", "scores": [0, 0, 0, 0, None, 0, 0, 0, -1], "best_class": "draw"})
        + "\n"
    )
    labels = load_positions(path, TTT)
    assert labels.moves_played.tolist() == [4, 1]
    # 5: a win, not the quickest (weak only); 9: a loss (neither).
    result = score(labels, np.array([4, 8]))
    assert (result.overall.positions, result.overall.weak, result.overall.strong) == (2, 1, 0)
    result = score(labels, np.array([2, 0]))
    assert (result.overall.weak, result.overall.strong) == (2, 2)
    assert result.phases["<=10"].positions == 2 and result.phases["21+"].positions == 0
    assert result.random_weak_accuracy == pytest.approx((2 / 5 + 7 / 8) / 2)
    out = result.to_dict()
    assert out["positions"] == 2 and out["weak_accuracy"] == 1.0 and out["strong_accuracy"] == 1.0


@pytest.mark.parametrize(
    "line, error",
    [
        ("{", "line 1: not a JSON object"),
        ('{"scores": [0,0,0,0,0,0,0,0,0]}', 'line 1: needs "moves"'),
        ('{"moves": "5", "scores": [0, 0]}', 'line 1: needs "scores", a list of 9'),
        ('{"moves": "5 5", "scores": [0,0,0,0,0,0,0,0,0]}', "line 1: move 2 (5) is illegal"),
        ('{"moves": "0", "scores": [0,0,0,0,0,0,0,0,0]}', "line 1: '0' is not a cell"),
        ('{"moves": "5", "scores": [0,0,0,0,0,0,0,0,0]}', "line 1: move 5 is illegal but has a score"),
        ('{"moves": "5", "scores": [null,0,0,0,null,0,0,0,0]}', "line 1: move 1 is legal but its score is null"),
        ('{"moves": "5", "scores": ["a",0,0,0,null,0,0,0,0]}', "line 1: score of move 1 is 'a', not a number"),
        ('{"moves": "12457", "scores": [null,null,0,null,null,0,null,0,0]}', "line 1: the game is already over"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(AzjobsError, match="bad.jsonl " + error.replace("(", r"\(").replace(")", r"\)")):
        load_positions(path, TTT)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(AzjobsError, match="labelled positions file .*nope.jsonl not found"):
        load_positions(tmp_path / "nope.jsonl", TTT)
    (tmp_path / "unreadable.jsonl").mkdir()
    with pytest.raises(AzjobsError, match="unreadable.jsonl is not a file"):
        load_positions(tmp_path / "unreadable.jsonl", TTT)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(AzjobsError, match="holds no positions"):
        load_positions(tmp_path / "empty.jsonl", TTT)


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_bench_command_with_a_baseline(ttt_file: Path) -> None:
    result = CliRunner().invoke(
        main, ["bench", "strength", "--game", "tictactoe", "--player", "alphabeta:9", "--positions", str(ttt_file)]
    )
    assert result.exit_code == 0, result.output
    out = last_json(result.stdout)
    assert (out["positions"], out["weak_accuracy"], out["strong_accuracy"]) == (300, 1.0, 1.0)
    assert set(out["phases"]) == {"<=10", "11-20", "21+"} and out["player"] == "alphabeta:9"


def test_bench_command_with_a_run(ttt_file: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    settings = Settings(game="tictactoe", net_blocks=1, net_channels=8, num_simulations=4)
    write_file(run_dir, settings)
    torch.manual_seed(0)
    write_atomic(run_dir / WEIGHTS_DIR / file_name(3), to_bytes(build_model(TTT, settings), {"version": 3}))
    for extra, sims in (([], 4), (["--sims", "0"], 0)):
        result = CliRunner().invoke(
            main, ["bench", "strength", "--run-dir", str(run_dir), "--positions", str(ttt_file), *extra]
        )
        assert result.exit_code == 0, result.output
        out = last_json(result.stdout)
        assert out["positions"] == 300 and out["weights_version"] == 3 and out["sims"] == sims
        assert 0 <= out["strong_accuracy"] <= out["weak_accuracy"] <= 1
    recorded = CliRunner().invoke(
        main, ["bench", "strength", "--run-dir", str(run_dir), "--positions", str(ttt_file), "--sims", "2", "--record"]
    )
    assert recorded.exit_code == 0, recorded.output
    [kept] = records.read_files(run_dir, records.AccuracyRecord)  # where `azjobs plot` finds it
    assert (kept.player, kept.sims, kept.version["version"]) == ("net:3", 2, 3)
    assert kept.weak_accuracy == last_json(recorded.stdout)["weak_accuracy"]
    baseline = CliRunner().invoke(
        main,
        ["bench", "strength", "--game", "tictactoe", "--player", "random", "--positions", str(ttt_file), "--record"],
    )
    assert baseline.exit_code != 0 and "use it with a net player" in baseline.stderr
    wrong_game = CliRunner().invoke(
        main, ["bench", "strength", "--run-dir", str(run_dir), "--game", "connect4", "--positions", str(ttt_file)]
    )
    assert wrong_game.exit_code != 0 and "plays tictactoe, not connect4" in wrong_game.stderr
    bad_file = CliRunner().invoke(main, ["bench", "strength", "--run-dir", str(run_dir), "--positions", str(C4_SAMPLE)])
    assert bad_file.exit_code != 0 and "c4_sample.jsonl line 1:" in bad_file.stderr
