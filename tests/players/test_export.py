"""`azjobs export` and the player `agent:FILE`: the file holds the network and its card, runs under
onnxruntime as under torch, and picks the moves of `azjobs bestmove --sims 0`, through azjobs and
through the onnxruntime-only example of docs/using-the-agent.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.eval import records
from azjobs.eval.positions import LabelledPositions, load_positions, resolve_positions
from azjobs.games import get_game
from azjobs.net import build_model, to_bytes
from azjobs.players import NetPlayer, load_player
from azjobs.players.exported import CARD_KEY, AgentPlayer, load_agent_file
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic

onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra (pip install 'azjobs[export]')")

GAME = get_game("connect4")
SETTINGS = Settings(game="connect4", net_blocks=1, net_channels=8, num_simulations=8)
DOC = Path(__file__).resolve().parents[2] / "docs" / "using-the-agent.md"


def accuracy_record(version: int, weak: float) -> records.AccuracyRecord:
    return records.AccuracyRecord(
        id=f"acc-{version}",
        time=float(version),
        player=f"net:{version}",
        sims=0,
        positions=100,
        weak_accuracy=weak,
        strong_accuracy=weak / 2,
        phases={},
        random_weak_accuracy=0.4,
        seconds=1.0,
        version={"version": version},
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions; version 1 scored the more accurate, so it is net:best though 2 is the newest."""
    folder = tmp_path_factory.mktemp("storage") / "c4"
    write_file(folder, SETTINGS)
    for version in (1, 2):
        torch.manual_seed(version)
        meta = {"version": version, "game": GAME.name, "step": 50 * version, "train_seconds": 6.0 * version}
        write_atomic(folder / WEIGHTS_DIR / file_name(version), to_bytes(build_model(GAME, SETTINGS), meta))
    for version, weak in ((1, 0.7), (2, 0.6)):
        records.save(None, "c4", folder, accuracy_record(version, weak))
    return folder


def export(run_dir: Path, out: Path, *args: str) -> dict:
    result = CliRunner().invoke(main, ["export", "--run-dir", str(run_dir), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def onnx_file(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("agents") / "connect4.onnx"
    export(run_dir, out, "--best")
    return out


@pytest.fixture(scope="module")
def labels() -> LabelledPositions:
    return load_positions("connect4", GAME)


def bundled_moves() -> list[str]:
    return [json.loads(line)["moves"] for line in resolve_positions("connect4").read_text().splitlines()]


def torch_outputs(run_dir: Path, version: int, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, player = load_player(f"net:{version}", run_dir=run_dir, sims=0)
    assert isinstance(player, NetPlayer)
    return player.evaluate(planes)


def test_the_onnx_file_computes_what_torch_does(run_dir: Path, onnx_file: Path, labels: LabelledPositions) -> None:
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    planes = GAME.encode(labels.states)  # [1302, 2, 6, 7] uint8
    want_logits, want_values = torch_outputs(run_dir, 1, planes)
    for batch in (planes, planes[:1], planes[:7]):  # the batch axis is dynamic
        logits, values = session.run(["logits", "value"], {"planes": batch})
        np.testing.assert_allclose(logits, want_logits[: len(batch)], atol=1e-4, rtol=0)
        np.testing.assert_allclose(values, want_values[: len(batch)], atol=1e-4, rtol=0)


def test_the_card(run_dir: Path, onnx_file: Path) -> None:
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    card = json.loads(session.get_modelmeta().custom_metadata_map[CARD_KEY])
    assert card == json.loads(Path(f"{onnx_file}.json").read_text())  # the sidecar says the same
    assert (card["game"], card["run"], card["weights_version"]) == ("connect4", "c4", 1)
    assert "most accurate" in card["chosen"]
    assert card["training"] == {"step": 50, "train_seconds": 6.0}
    assert card["network"] == {"blocks": 1, "channels": 8, "precision": "fp32"}
    assert card["input"]["shape"] == ["batch", 2, 6, 7] and card["input"]["dtype"] == "uint8"
    assert card["input"]["planes"] == list(GAME.plane_names) and card["input"]["layout"] == GAME.encoding_doc
    assert card["actions"] == {"count": 7, "names": ["1", "2", "3", "4", "5", "6", "7"]}
    assert [(a["sims"], a["weak_accuracy"]) for a in card["accuracy"]] == [(0, 0.7)]
    assert card["rating"] is None  # no matches recorded
    assert card["search"]["num_simulations"] == 8
    assert [i.name for i in session.get_inputs()] == ["planes"]
    assert [o.name for o in session.get_outputs()] == ["logits", "value"]


def test_torchscript_and_fp16(run_dir: Path, tmp_path: Path, labels: LabelledPositions) -> None:
    planes = GAME.encode(labels.states)
    want_logits, want_values = torch_outputs(run_dir, 2, planes)
    card = export(run_dir, tmp_path / "c4.pt")  # the newest, TorchScript by the name
    assert card["weights_version"] == 2 and card["chosen"] == "the newest"
    agent = load_agent_file(tmp_path / "c4.pt")
    assert agent.card == card
    logits, values = agent.evaluate(planes)
    np.testing.assert_allclose(logits, want_logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(values, want_values, atol=1e-5, rtol=0)

    card = export(run_dir, tmp_path / "half.onnx", "--version", "2", "--fp16")
    assert card["network"]["precision"] == "fp16" and card["weights_version"] == 2
    logits, values = load_agent_file(tmp_path / "half.onnx").evaluate(planes)
    assert logits.dtype == np.float32 and values.dtype == np.float32
    np.testing.assert_allclose(logits, want_logits, atol=2e-2, rtol=0)
    np.testing.assert_allclose(values, want_values, atol=2e-2, rtol=0)


def bestmove(*args: str, lines: list[str]) -> list[str]:
    result = CliRunner().invoke(main, ["bestmove", *args], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_the_agent_plays_as_bestmove_does(run_dir: Path, onnx_file: Path, labels: LabelledPositions) -> None:
    lines = bundled_moves()
    want = bestmove("--run-dir", str(run_dir), "--player", "net:1", "--sims", "0", lines=lines)
    assert bestmove("--player", f"agent:{onnx_file}", lines=lines) == want
    assert bestmove("--run-dir", str(run_dir), "--player", "net:best", "--sims", "0", lines=lines) == want
    _, player = load_player(f"agent:{onnx_file}")
    assert isinstance(player, AgentPlayer) and player.name == f"agent:{onnx_file}"
    chosen = [GAME.action_to_str(a) for a in player.choose(labels.states, np.random.default_rng(0))]
    assert chosen == want


def test_the_agent_searches(run_dir: Path, onnx_file: Path, labels: LabelledPositions) -> None:
    _, player = load_player(f"agent:{onnx_file}:sims=16")
    assert isinstance(player, AgentPlayer) and player.sims == 16 and player.name == f"agent:{onnx_file}:sims=16"
    states = labels.states[:40]
    chosen = player.choose(states, np.random.default_rng(0))
    assert GAME.legal_mask(states)[np.arange(len(states)), chosen].all()
    result = CliRunner().invoke(
        main, ["bench", "match", f"agent:{onnx_file}:sims=4", "net:2", "--run-dir", str(run_dir), "--games", "2"]
    )
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["a"] == f"agent:{onnx_file}:sims=4" and outcome["b"] == "net:2" and outcome["games"] == 2


def doc_example() -> str:
    """The first python block of docs/using-the-agent.md, as it stands."""
    [first, *_] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return first


def test_the_docs_example_needs_only_onnxruntime_and_numpy(run_dir: Path, onnx_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "pick.py"
    script.write_text(doc_example())
    # -I: no PYTHON* variables, no user site, no script folder on sys.path; -S: no site-packages (so no
    # editable azjobs). Then only the folder that holds numpy and onnxruntime, without its .pth files.
    site = sorted({Path(onnxruntime.__file__).parents[1], Path(np.__file__).parents[1]})
    assert all(not (folder / "azjobs").exists() for folder in site)
    boot = (
        f"import sys; sys.path[:0] = {[str(s) for s in site]!r}\n"
        "try:\n    import azjobs\nexcept ImportError:\n    pass\nelse:\n    sys.exit('azjobs is importable')\n"
        f"sys.argv = ['pick.py', {str(onnx_file)!r}]\n"
        f"exec(compile(open({str(script)!r}).read(), 'pick.py', 'exec'))\n"
    )
    lines = bundled_moves()
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", boot],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    want = bestmove("--run-dir", str(run_dir), "--player", "net:1", "--sims", "0", lines=lines)
    assert done.stdout.splitlines() == want


def test_one_line_errors(run_dir: Path, tmp_path: Path) -> None:
    def error(*args: str) -> str:
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code != 0
        return result.stderr.strip()

    out = str(tmp_path / "x.onnx")
    assert "give --version or --best, not both" in error(
        "export", "--run-dir", str(run_dir), "--out", out, "--version", "1", "--best"
    )
    assert "has no weights version 9" in error("export", "--run-dir", str(run_dir), "--out", out, "--version", "9")
    bare = tmp_path / "bare"
    write_file(bare, SETTINGS)
    assert "has no ratings or accuracy yet" in error("export", "--run-dir", str(bare), "--out", out, "--best")
    assert "no agent file" in error("bestmove", "--player", f"agent:{tmp_path / 'missing.onnx'}")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert "cannot be read as onnx" in error("bestmove", "--player", f"agent:{tmp_path / 'junk.onnx'}")
    assert not list(tmp_path.glob(".tmp-*"))  # nothing half written is left behind


def test_an_agent_of_another_game(onnx_file: Path) -> None:
    result = CliRunner().invoke(main, ["bestmove", "--player", f"agent:{onnx_file}", "--game", "tictactoe"])
    assert result.exit_code != 0 and "plays connect4, not tictactoe" in result.stderr


def test_the_design_names_the_card_format() -> None:
    from azjobs.players.exported import CARD_FORMAT

    design = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    assert f"## Exported agents (card format {CARD_FORMAT})" in design
