"""`azjobs doctor` on a real run: a verdict line per check, and each fault named with its fix."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
import torch
from click.testing import CliRunner
from harness import NEVER_TRAINS, TINY, Roles, wait_until

from azjobs import keys
from azjobs.cli import main
from azjobs.cluster import heartbeat
from azjobs.cluster.embedded import free_port

PASSWORD = "s3cret-Pw"


def doctor(run_dir: Path, url: str, *extra: str) -> tuple[int, dict[str, list[dict[str, str]]]]:
    result = CliRunner().invoke(
        main, ["doctor", "--run-dir", str(run_dir), "--redis-url", url, "--json", "--interval", "1", *extra]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    by_check: dict[str, list[dict[str, str]]] = {}
    for verdict in json.loads(result.stdout):
        by_check.setdefault(verdict["check"], []).append(verdict)
    return result.exit_code, by_check


def levels(by_check: dict[str, list[dict[str, str]]], check: str) -> set[str]:
    return {v["level"] for v in by_check.get(check, [])}


def test_unreachable_redis_is_one_failed_check(tmp_path: Path) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(main, ["doctor", "--run-dir", str(tmp_path / "r"), "--redis-url", url])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAIL  redis") and "fix: start it" in lines[0]
    assert PASSWORD not in result.output


def test_doctor_on_a_run(roles: Roles, tmp_path: Path, redis_client: redis.Redis, redis_url: str) -> None:
    run_dir = tmp_path / "storage" / "dr"
    common = ["--run-dir", str(run_dir)]
    roles.start("trainer", ["train", *common, *TINY, *NEVER_TRAINS]).wait_for("published weights version 1")
    wait_until(lambda: redis_client.llen(b"rq:queue:" + keys.selfplay_queue("dr").encode()), "queued jobs")

    code, found = doctor(run_dir, redis_url)
    assert code == 1
    assert levels(found, "redis") == {"ok"} and levels(found, "run") == {"ok"}
    assert levels(found, "storage") == {"ok"} and levels(found, "weights") == {"ok"}
    assert levels(found, "trainer") == {"ok"}
    assert levels(found, "persist") == {"warn"}  # the test Redis keeps nothing on disk
    for role in ("gpu-serve", "worker"):
        assert levels(found, role) == {"FAIL"} and "start" in found[role][0]["fix"]
    assert any("no live worker" in v["found"] for v in found["queues"])

    roles.start("gpu-serve", [*["gpu-serve"], *common])
    roles.start("worker", ["worker", *common])
    wait_until(lambda: int(redis_client.hget(keys.stats("dr"), "jobs") or 0) >= 1, "a job done")
    code, found = doctor(run_dir, redis_url)
    fails = [v for vs in found.values() for v in vs if v["level"] == "FAIL"]
    assert code == 0 and not fails, fails
    assert levels(found, "versions") == {"ok"} and levels(found, "shared") == {"ok"}
    # The trainer and gpu-serve each name the device they run on: a GPU where one is visible, else the
    # CPU, which is a warning.
    assert len(found["cuda"]) == 2
    if torch.cuda.is_available():
        assert levels(found, "cuda") == {"ok"}
        assert all(torch.cuda.get_device_name() in v["found"] and "capability" in v["found"] for v in found["cuda"])
    else:
        assert levels(found, "cuda") == {"warn"} and all("CUDA is not visible" in v["found"] for v in found["cuda"])

    # A gpu-serve on another GPU machine: its card, capability and precision are shown.
    heartbeat.beat(
        redis_client,
        "dr",
        "gpu-serve",
        "gpu-box-1",
        {"device": "cuda:1", "cuda": "NVIDIA A100", "cuda_capability": "8.0", "precision": "bf16"},
    )
    code, found = doctor(run_dir, redis_url, "--interval", "0")
    assert any(
        v["level"] == "ok" and v["found"].endswith("runs on cuda:1 (NVIDIA A100, capability 8.0, bf16)")
        for v in found["cuda"]
    ), found["cuda"]
    redis_client.delete(keys.heartbeat("dr", "gpu-serve", "gpu-box-1"))
    redis_client.srem(keys.processes("dr"), "gpu-serve:gpu-box-1")

    # A process gone silent, and one of another azjobs version.
    heartbeat.beat(redis_client, "dr", "worker", "far-away-1", {"evaluator": "remote"})
    redis_client.hset(keys.heartbeat("dr", "worker", "far-away-1"), "time", time.time() - 60)
    redis_client.delete(keys.alive("dr", "worker", "far-away-1"))  # its alive key expired
    heartbeat.beat(redis_client, "dr", "worker", "old-2")
    redis_client.hset(keys.heartbeat("dr", "worker", "old-2"), "azjobs", "0.0.1")
    code, found = doctor(run_dir, redis_url, "--interval", "0")
    assert code == 1
    assert any("far-away-1" in v["found"] and "no heartbeat" in v["found"] for v in found["silent"])
    assert levels(found, "versions") == {"FAIL"} and "0.0.1" in found["versions"][0]["found"]

    # Another machine given a folder of the same name that is not the shared one.
    elsewhere = tmp_path / "elsewhere" / "dr"
    elsewhere.mkdir(parents=True)
    code, found = doctor(elsewhere, redis_url, "--interval", "0")
    assert code == 1 and levels(found, "storage") == {"FAIL"}
    assert "no marker file" in found["storage"][0]["found"]
    assert levels(found, "weights") == {"FAIL"}


def test_doctor_text_lines(roles: Roles, tmp_path: Path, redis_url: str) -> None:
    run_dir = tmp_path / "storage" / "dt"
    roles.start("trainer", ["train", "--run-dir", str(run_dir), *TINY, *NEVER_TRAINS]).wait_for("published weights")
    result = CliRunner().invoke(
        main, ["doctor", "--run-dir", str(run_dir), "--redis-url", redis_url, "--interval", "0"]
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("ok    redis     reachable at unix://")
    for line in lines:
        level = line.split()[0]
        assert level in ("ok", "warn", "FAIL")
        assert ("; fix: " in line) == (level != "ok"), line
