"""Machines for the tests that need several: hosts in network namespaces with host names of their own,
cabled to a bridge in the head's namespace (a switch), on RFC 5737 addresses that exist nowhere else."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
# Documentation addresses (RFC 5737): the head is .1, the other hosts .2, .3, ...
HEAD_ADDRESS = "192.0.2.1"
TRAIN = [
    "--",
    "--net-blocks",
    "1",
    "--net-channels",
    "8",
    "--num-simulations",
    "4",
    "--games-per-job",
    "8",
    "--temperature-moves",
    "2",
    "--min-replay-positions",
    "100",
    "--replay-buffer-size",
    "5000",
    "--batch-size",
    "32",
    "--publish-every-steps",
    "5",
    "--max-train-per-position",
    "8",
]


@dataclass
class Host:
    name: str  # the network namespace, and the host name inside it
    state: Path  # AZJOBS_STATE_DIR of the scripts on this host
    address: str
    cable: str = ""  # the head-side end of this host's veth pair (a bridge port); "" on the head itself
    mounts: dict[Path, Path] = field(default_factory=dict)  # mount point -> what is bind-mounted there

    def run(self, command: list[str], env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess:
        """`command` inside the namespace, under a host name of its own (a fresh UTS namespace) and in a mount
        namespace of its own holding this host's `mounts` (what its daemons keep after the command ends)."""
        setup = [f"hostname {shlex.quote(self.name)}"]
        setup += [
            f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(point))}"
            for point, source in self.mounts.items()
        ]
        inner = [
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            " && ".join(setup) + ' && exec "$@"',
            "sh",
            *command,
        ]
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *inner], env=env, capture_output=True, text=True, timeout=timeout_s
        )

    def pids(self) -> list[int]:
        """Every process in this host's network namespace."""
        found = sh("ip", "netns", "pids", self.name)
        return [int(p) for p in found.stdout.split()]


def sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


def cut(head: Host, host: Host) -> None:
    """Unplug `host` from the head's switch: its packets vanish and nothing tells either side (a partition)."""
    check(sh("ip", "-n", head.name, "link", "set", host.cable, "down"))


def heal(head: Host, host: Host) -> None:
    check(sh("ip", "-n", head.name, "link", "set", host.cable, "up"))


@contextmanager
def make_hosts(tmp_path: Path, *roles: str) -> Iterator[list[Host]]:
    """The head and one host per role (e.g. "gpu", "worker"), named azj-<role>-<tag>; skips where the machine
    cannot make them. On leaving, every process left in the namespaces is killed and the namespaces go."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("needs `ip` (iproute2) and `unshare` (util-linux)")
    tag = uuid.uuid4().hex[:6]
    head = Host(f"azj-head-{tag}", tmp_path / "state-head", HEAD_ADDRESS)
    hosts = [head] + [
        Host(f"azj-{role}-{tag}", tmp_path / f"state-{role}", f"192.0.2.{i + 2}", cable=f"p{tag}{i}")
        for i, role in enumerate(roles)
    ]
    made: list[str] = []
    try:
        for host in hosts:
            done = sh("ip", "netns", "add", host.name)
            if done.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
            made.append(host.name)
        for step in _cabling(tag, hosts):
            done = sh(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot cable the namespaces ({' '.join(step)}): {done.stderr.strip()}")
        probe = sh("ip", "netns", "exec", head.name, "unshare", "--uts", "--mount", "true")
        if probe.returncode != 0:
            pytest.skip(f"cannot give a namespace its own host name and mounts: {probe.stderr.strip()}")
        yield hosts
    finally:
        for host in hosts:  # whatever the scripts left running, by pid, before the namespaces go
            for pid in host.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for name in made:
            sh("ip", "netns", "del", name)


def _cabling(tag: str, hosts: list[Host]) -> list[list[str]]:
    """The head holds a bridge (the switch) with its address; each other host a veth pair into it."""
    head = hosts[0].name
    steps = [
        ["ip", "-n", head, "link", "add", "br0", "type", "bridge"],
        ["ip", "-n", head, "addr", "add", f"{HEAD_ADDRESS}/24", "dev", "br0"],
        ["ip", "-n", head, "link", "set", "br0", "up"],
        ["ip", "-n", head, "link", "set", "lo", "up"],
    ]
    for i, host in enumerate(hosts[1:]):
        inside = f"c{tag}{i}"
        steps += [
            ["ip", "link", "add", host.cable, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", host.cable, "netns", head],
            ["ip", "link", "set", inside, "netns", host.name],
            ["ip", "-n", head, "link", "set", host.cable, "master", "br0"],
            ["ip", "-n", head, "link", "set", host.cable, "up"],
            ["ip", "-n", host.name, "addr", "add", f"{host.address}/24", "dev", inside],
            ["ip", "-n", host.name, "link", "set", "lo", "up"],
            ["ip", "-n", host.name, "link", "set", inside, "up"],
        ]
    return steps


def env_for(host: Host, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZJOBS_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        AZJOBS_STATE_DIR=str(host.state),
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def check(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    return done
