"""Process settings: a role started with its own batch size or cadence uses it, the run's stay as stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from click.testing import CliRunner

from azjobs import keys
from azjobs import settings as S
from azjobs.cli import main
from azjobs.cluster import heartbeat
from azjobs.cluster.local_mode import own_flags
from azjobs.games.tictactoe import TICTACTOE
from azjobs.inference.client import InferenceClient
from azjobs.inference.local import LocalEvaluator
from azjobs.net import build_model, to_bytes
from azjobs.run import publish, read_file
from azjobs.storage.weights import WeightStore

RUN = "roles"
RUN_SETTINGS = S.Settings(
    game="tictactoe", net_blocks=1, net_channels=8, inference_batch_size=64, max_request_positions=64
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(S.ENV_PREFIX):
            monkeypatch.delenv(name)


def one_line_error(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "Traceback" not in result.output
    return line


def created_run(client: redis.Redis, run_dir: Path) -> WeightStore:
    """A run created with a CPU's batch of 64, with its first weights published."""
    publish(client, RUN, run_dir, RUN_SETTINGS)
    torch.manual_seed(1)
    store = WeightStore(client, RUN, run_dir)
    store.publish(1, to_bytes(build_model(TICTACTOE, RUN_SETTINGS), {"version": 1}))
    return store


def test_gpu_serve_with_its_own_batch_size(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / RUN
    store = created_run(redis_client, run_dir)
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    # No socket timeout: the first reply waits for the server process to start (seconds on a busy machine).
    client = InferenceClient(redis.Redis.from_url(redis_url, socket_timeout=None), RUN, client_id="c")
    rng = np.random.default_rng(0)
    asked = [rng.integers(0, 2, size=(5, *TICTACTOE.planes_shape), dtype=np.uint8) for _ in range(6)]
    ids = [client.submit(planes) for planes in asked]  # all waiting before the server's first pop
    env = {k: v for k, v in os.environ.items() if not k.startswith(S.ENV_PREFIX)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azjobs",
            "gpu-serve",
            "--run-dir",
            str(run_dir),
            "--redis-url",
            redis_url,
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--channels-last",
            "off",
            "--threads",
            "1",
            "--batch-size",
            "8",
        ],
        env={**env, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for request_id, planes in zip(ids, asked):
            logits, values = client.receive(request_id)
            want = oracle.evaluate(planes)
            np.testing.assert_allclose(logits, want[0], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(values, want[1], rtol=1e-4, atol=1e-5)
    finally:
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=60)
    assert server.returncode == 0, log
    assert "this process's own inference_batch_size 8 (the run's: 64)" in log
    (beat,) = [p for p in heartbeat.read_all(redis_client, RUN) if p["role"] == "gpu-serve"]
    # Two requests of 5 would fit a batch of 64; one of 8 holds one: each request was a batch of its own.
    assert beat["batch_size"] == "8" and beat["inference_wait_ms"] == "2.0"
    assert int(beat["requests"]) >= 6 and beat["batches"] == beat["requests"]
    assert int(beat["positions"]) == 5 * int(beat["requests"])
    # The run's settings stay as created, in Redis and on the storage root.
    assert S.Settings.from_json(redis_client.get(keys.settings(RUN))).inference_batch_size == 64
    assert read_file(run_dir).inference_batch_size == 64

    result = CliRunner().invoke(main, ["status", "--json", "--redis-url", redis_url, "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)
    assert snap["overrides"] == {f"gpu-serve:{beat['id']}": {"inference_batch_size": 8}}
    assert snap["run_settings"]["inference_batch_size"] == 64 and snap["run_settings"]["inference_wait_ms"] == 2.0
    client.close()
    client.redis.close()


def test_status_marks_a_process_value_that_is_not_the_runs(redis_client: redis.Redis, tmp_path: Path) -> None:
    from rich.console import Console

    from azjobs.cluster import status

    publish(redis_client, RUN, tmp_path / RUN, RUN_SETTINGS.replace(publish_every_steps=100))
    heartbeat.beat(redis_client, RUN, "gpu-serve", "g1", {"batch_size": 512, "inference_wait_ms": 2.0})
    heartbeat.beat(
        redis_client,
        RUN,
        "trainer",
        "t1",
        {
            "step": 7,
            "publish_every_steps": 25,
            "checkpoint_every_steps": 500,
            "eval_every_versions": 10,
            "selfplay_queue_depth": 4,
        },
    )
    snap = status.collect(redis_client, RUN)
    assert snap.overrides == {"gpu-serve:g1": {"inference_batch_size": 512}, "trainer:t1": {"publish_every_steps": 25}}
    console = Console(record=True, width=300, color_system=None)
    console.print(status.render(snap))
    lines = console.export_text().splitlines()
    server = next(line for line in lines if " g1 " in line)
    assert "fill - of 512 (run: 64)" in server and "wait up to 2 ms " in server
    trainer = next(line for line in lines if " t1 " in line)
    assert "publish every 25 steps (run: 100), checkpoint every 500 steps," in trainer
    assert "evaluate every 10 versions, queue 4 jobs" in trainer


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--batch-size", "0"], None, "setting inference_batch_size in --batch-size must be an integer >= 1"),
        (["--batch-size", "lots"], None, "got 'lots'"),
        (
            [],
            {"AZJOBS_INFERENCE_WAIT_MS": "5000"},
            "setting inference_wait_ms in AZJOBS_INFERENCE_WAIT_MS must be a number in [0, 1000]",
        ),
    ],
)
def test_a_bad_value_of_gpu_serve_is_one_line(
    args: list[str], env: dict[str, str] | None, named: str, tmp_path: Path
) -> None:
    # Checked before Redis is even asked: no run, no server needed.
    line = one_line_error(
        ["gpu-serve", "--run-dir", str(tmp_path / "r"), "--redis-url", "redis://127.0.0.1:1/0", *args], env=env
    )
    assert named in line


def test_a_bad_value_of_train_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(["train", "--run-dir", str(tmp_path / "r"), "--publish-every-steps", "0"])
    assert "setting publish_every_steps in the flags must be an integer >= 1" in line


def test_run_hands_each_role_its_own_flags() -> None:
    own = {
        "inference_batch_size": 256,
        "inference_wait_ms": 4.0,
        "publish_every_steps": 50,
        "eval_every_versions": 0,
        "net_blocks": 3,
        "num_workers": 2,
    }
    assert own_flags("gpu-serve", own) == ["--batch-size", "256", "--wait-ms", "4.0"]
    assert own_flags("train", own) == ["--publish-every-steps", "50", "--eval-every-versions", "0"]
    # Each role's command takes them: parsed as that command would, they give the values back.
    for command in ("gpu-serve", "train"):
        ctx = main.commands[command].make_context(command, [*own_flags(command, own), "--run-dir", "r"])
        given = {name: ctx.params[name] for name in S.process_settings(command) if ctx.params.get(name) is not None}
        assert S.own_values(command, given) == {k: v for k, v in own.items() if k in S.process_settings(command)}
