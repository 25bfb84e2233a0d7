"""Two hosts, really: the head (Redis, workers) and the GPU side (trainer, gpu-serve) in their own network
namespaces and host names, cabled through a bridge, started with the cluster scripts, talking over their own
addresses with a password; the storage root shared (mounted at another path on the GPU host)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import HEAD_ADDRESS, SCRIPTS, TRAIN, Host, check, env_for, make_hosts


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    with make_hosts(tmp_path, "gpu") as (head, gpu):
        yield head, gpu


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
        check(
            gpu.run(
                [
                    str(SCRIPTS / "start_gpu.sh"),
                    "--redis-url",
                    url,
                    "--run-dir",
                    str(gpu_mount / "tt"),
                    "--game",
                    "tictactoe",
                    *TRAIN,
                ],
                with_password,
            )
        )
        check(
            head.run(
                [str(SCRIPTS / "start_worker.sh"), "--redis-url", url, "--run-dir", str(storage / "tt"), "-n", "2"],
                env_for(head, AZJOBS_REDIS_PASSWORD=password),
            )
        )

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

        doctor = head.run(
            [sys.executable, "-m", "azjobs", "doctor", "--run-dir", str(storage / "tt"), "--interval", "1"], side
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "every live process sees the same storage root (marker)" in doctor.stdout
        assert password not in doctor.stdout + doctor.stderr
    finally:
        check(gpu.run([str(SCRIPTS / "stop_cluster.sh")], env_for(gpu)))
        check(head.run([str(SCRIPTS / "stop_cluster.sh")], env_for(head)))
    # The weights the GPU host wrote through its own mount are on the shared storage root.
    assert sorted(p.name for p in (storage / "tt" / "weights").iterdir())[:3] == [
        "v000001.safetensors",
        "v000002.safetensors",
        "v000003.safetensors",
    ]
    for log in (*head.state.glob("logs/*.log"), *gpu.state.glob("logs/*.log")):
        assert password not in log.read_text()
