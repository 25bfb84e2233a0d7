"""Two hosts, really: the head (Redis, workers) and the GPU side (trainer, gpu-serve) in their own network
namespaces and host names, joined by a veth pair, started with the cluster scripts, talking over their own
addresses with a password; the storage root shared (mounted at another path on the GPU host)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
# Documentation addresses (RFC 5737): they exist only on the veth pair between the two namespaces.
HEAD_ADDRESS, GPU_ADDRESS = "192.0.2.1", "192.0.2.2"
TRAIN = ["--", "--net-blocks", "1", "--net-channels", "8", "--num-simulations", "4", "--games-per-job", "8",
         "--temperature-moves", "2", "--min-replay-positions", "100", "--replay-buffer-size", "5000",
         "--batch-size", "32", "--publish-every-steps", "5", "--max-train-per-position", "8"]


@dataclass
class Host:
    name: str  # the network namespace, and the host name inside it
    state: Path  # AZJOBS_STATE_DIR of the scripts on this host

    def run(self, command: list[str], env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess:
        """`command` inside the namespace, under a host name of its own (a fresh UTS namespace)."""
        inner = ["unshare", "--uts", "sh", "-c", f'hostname {self.name} && exec "$@"', "sh", *command]
        return subprocess.run(["ip", "netns", "exec", self.name, *inner], env=env, capture_output=True, text=True,
                              timeout=timeout_s)


def sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("needs `ip` (iproute2) and `unshare` (util-linux)")
    tag = uuid.uuid4().hex[:6]
    head, gpu = Host(f"azj-head-{tag}", tmp_path / "state-head"), Host(f"azj-gpu-{tag}", tmp_path / "state-gpu")
    made: list[str] = []
    try:
        for host in (head, gpu):
            done = sh("ip", "netns", "add", host.name)
            if done.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
            made.append(host.name)
        steps = [
            ["ip", "link", "add", f"vh{tag}", "type", "veth", "peer", "name", f"vg{tag}"],
            ["ip", "link", "set", f"vh{tag}", "netns", head.name],
            ["ip", "link", "set", f"vg{tag}", "netns", gpu.name],
            ["ip", "-n", head.name, "addr", "add", f"{HEAD_ADDRESS}/24", "dev", f"vh{tag}"],
            ["ip", "-n", gpu.name, "addr", "add", f"{GPU_ADDRESS}/24", "dev", f"vg{tag}"],
        ]
        for host, dev in ((head, f"vh{tag}"), (gpu, f"vg{tag}")):
            steps += [["ip", "-n", host.name, "link", "set", "lo", "up"], ["ip", "-n", host.name, "link", "set", dev, "up"]]
        for step in steps:
            done = sh(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot join the namespaces with a veth pair ({' '.join(step)}): {done.stderr.strip()}")
        probe = sh("ip", "netns", "exec", head.name, "unshare", "--uts", "true")
        if probe.returncode != 0:
            pytest.skip(f"cannot give a namespace its own host name: {probe.stderr.strip()}")
        yield head, gpu
    finally:
        for host in (head, gpu):  # whatever the scripts left running, by pid, before the namespaces go
            for pidfile in (host.state / "pids").glob("*.pid"):
                try:
                    os.kill(int(pidfile.read_text()), 9)
                except (ProcessLookupError, ValueError):
                    pass
        for name in made:
            sh("ip", "netns", "del", name)


def env_for(host: Host, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_")}
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", AZJOBS_STATE_DIR=str(host.state),
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def check(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    return done


def test_head_and_gpu_host(hosts: tuple[Host, Host], tmp_path: Path) -> None:
    head, gpu = hosts
    storage = tmp_path / "storage"
    (storage / "tt").mkdir(parents=True)
    gpu_mount = tmp_path / "gpu-mnt"
    gpu_mount.symlink_to(storage)  # the GPU host mounts the same storage root elsewhere
    url = f"redis://{HEAD_ADDRESS}:6379/0"

    check(head.run([str(SCRIPTS / "start_head.sh"), "--bind", HEAD_ADDRESS, "--no-dashboard"], env_for(head)))
    password = (head.state / "redis.password").read_text().strip()
    try:
        # The GPU host reaches the head's Redis over the veth pair, and only with the password.
        ping = [sys.executable, "-c", f"import redis; redis.Redis('{HEAD_ADDRESS}', 6379).ping()"]
        refused = gpu.run(ping, env_for(gpu))
        assert refused.returncode != 0 and "Authentication" in refused.stderr + refused.stdout
        with_password = env_for(gpu, AZJOBS_REDIS_PASSWORD=password)
        check(gpu.run([str(SCRIPTS / "start_gpu.sh"), "--redis-url", url, "--run-dir", str(gpu_mount / "tt"),
                       "--game", "tictactoe", *TRAIN], with_password))
        check(head.run([str(SCRIPTS / "start_worker.sh"), "--redis-url", url, "--run-dir", str(storage / "tt"),
                        "-n", "2"], env_for(head, AZJOBS_REDIS_PASSWORD=password)))

        status_cmd = [sys.executable, "-m", "azjobs", "status", "--json", "--run-dir", str(storage / "tt")]
        side = env_for(head, AZJOBS_REDIS_PASSWORD=password, AZJOBS_REDIS_URL=url)
        deadline = time.monotonic() + 240
        while True:
            snap = json.loads(check(head.run(status_cmd, side)).stdout)
            if (snap["weights_version"] or 0) >= 3 and int(snap["stats"].get("shards", 0)) >= 2:
                break
            assert time.monotonic() < deadline, f"the two hosts did not train: {snap}"
            time.sleep(2)
        by_role = {(p["role"], p["host"]) for p in snap["processes"] if p["alive"] == "True"}
        assert by_role == {("worker", head.name), ("trainer", gpu.name), ("gpu-serve", gpu.name)}

        doctor = head.run([sys.executable, "-m", "azjobs", "doctor", "--run-dir", str(storage / "tt"),
                           "--interval", "1"], side)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "every live process sees the same storage root (marker)" in doctor.stdout
        assert password not in doctor.stdout + doctor.stderr
    finally:
        check(gpu.run([str(SCRIPTS / "stop_cluster.sh")], env_for(gpu)))
        check(head.run([str(SCRIPTS / "stop_cluster.sh")], env_for(head)))
    # The weights the GPU host wrote through its own mount are on the shared storage root.
    assert sorted(p.name for p in (storage / "tt" / "weights").iterdir())[:3] == [
        "v000001.safetensors", "v000002.safetensors", "v000003.safetensors"]
    for log in (*head.state.glob("logs/*.log"), *gpu.state.glob("logs/*.log")):
        assert password not in log.read_text()
