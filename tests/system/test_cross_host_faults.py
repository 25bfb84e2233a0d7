"""Faults between machines, with hosts in network namespaces started by the cluster scripts (as in
tests/system/test_two_hosts.py): the GPU host partitioned while Redis restarts, a worker whose clock runs 30 s
ahead, and a worker host whose storage root is not mounted. Each skips, saying why, where namespaces
(or libfaketime, for the clock) are missing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import faketime
import pytest
from crosshost import Cluster, alive, assert_counted_once, daemon_pid, shard_files, wait_until
from netns import TRAIN, cut, heal, make_hosts

from azjobs.jobs.worker import MAINTENANCE_EVERY_S

pytestmark = pytest.mark.system

PARTITION_S = 60
BACK_WITHIN_S = 60  # every role beats again this soon after the partition heals
PROGRESS_WITHIN_S = 180  # and trains and plays again (a new weights version and new games) this soon
AHEAD_S = 30
REAP_PASSES = 5


def roles_alive(snap: dict) -> set[tuple[str, str]]:
    return {(p["role"], p["host"]) for p in snap["processes"] if p["alive"] == "True"}


def test_gpu_host_partitioned_while_redis_restarts(tmp_path: Path, storage: Path) -> None:
    """60 s without the GPU host, and the head's Redis restarted (from its append-only file) meanwhile:
    once the cable is back the trainer, gpu-serve and the workers carry on, nothing counted twice."""
    with make_hosts(tmp_path, "gpu") as (head, gpu):
        cluster = Cluster(head, storage)
        cluster.start_head()
        try:
            cluster.start_gpu(gpu, cluster.run_dir, *TRAIN)
            cluster.start_workers(head, cluster.run_dir, 2)
            wait_until(
                lambda: (
                    ((snap := cluster.status())["weights_version"] or 0) >= 2
                    and int(snap["stats"].get("shards", 0)) >= 2
                ),
                "the run to train",
                timeout_s=300,
            )
            pids = {
                name: daemon_pid(host, name)
                for host, name in (
                    (gpu, "trainer.tt"),
                    (gpu, "gpu-serve.tt"),
                    (head, "worker.tt.1"),
                    (head, "worker.tt.2"),
                )
            }

            cut(head, gpu)
            cut_at = time.monotonic()
            time.sleep(10)
            cluster.restart_redis()
            time.sleep(max(0.0, cut_at + PARTITION_S - time.monotonic()))
            before = cluster.status()
            heal(head, gpu)

            everyone = {("trainer", gpu.name), ("gpu-serve", gpu.name), ("worker", head.name)}
            wait_until(
                lambda: roles_alive(cluster.status()) >= everyone,
                "every role to beat again after the partition healed",
                timeout_s=BACK_WITHIN_S,
            )

            def progressed() -> bool:
                snap = cluster.status()
                return (snap["weights_version"] or 0) > (before["weights_version"] or 0) and int(
                    snap["stats"].get("games", 0)
                ) > int(before["stats"].get("games", 0))

            wait_until(
                progressed,
                "a new weights version and new games after the partition healed",
                timeout_s=PROGRESS_WITHIN_S,
            )
            assert {name for name, pid in pids.items() if not alive(pid)} == set(), "a role died of the fault"
        finally:
            cluster.stop(gpu)
            cluster.stop(head, "--keep-redis")
        assert_counted_once(cluster.facts(), cluster.run_dir / "replay")
        cluster.stop(head)


def faked_clock_env() -> dict[str, str]:
    """libfaketime on the worker processes alone: their wall clock runs AHEAD_S ahead."""
    return faketime.skewed_env(AHEAD_S)


def test_worker_clock_ahead(tmp_path: Path, storage: Path) -> None:
    """A worker host whose clock runs 30 s ahead: as it reaps, the other workers' running jobs must not
    look abandoned to it; no job is run twice."""
    ahead_env = faked_clock_env()
    with make_hosts(tmp_path, "ahead") as (head, ahead):
        cluster = Cluster(head, storage)
        cluster.start_head()
        probe = ahead.run([sys.executable, "-c", "import time; print(time.time())"], cluster.env(ahead, **ahead_env))
        assert float(probe.stdout) - time.time() > AHEAD_S - 5, f"the clock is not ahead: {probe.stdout}{probe.stderr}"
        try:
            cluster.start_gpu(head, cluster.run_dir, *TRAIN)
            cluster.start_workers(head, cluster.run_dir, 1)
            cluster.start_workers(ahead, cluster.run_dir, 1, **ahead_env)
            ahead_since = time.monotonic()

            def enough() -> bool:
                by = [f.worker for f in shard_files(cluster.run_dir / "replay")]
                # Each side finished jobs, so the one ahead has been between jobs (where it reaps) many times.
                return sum(ahead.name in w for w in by) >= 4 and sum(head.name in w for w in by) >= 4

            wait_until(enough, "both workers to finish four jobs each", timeout_s=300)
            # Between jobs a worker reaps at most every MAINTENANCE_EVERY_S: give the one ahead several passes.
            time.sleep(max(0.0, ahead_since + REAP_PASSES * MAINTENANCE_EVERY_S - time.monotonic()))
            facts = cluster.facts()
            assert facts["retried"] == [], (
                f"jobs handed back as abandoned while their worker ran them: {facts['retried']}"
            )
            assert facts["failed"] == 0, f"{facts['failed']} jobs failed"
        finally:
            cluster.stop(ahead)
            cluster.stop(head, "--keep-redis")
        assert_counted_once(cluster.facts(), cluster.run_dir / "replay")
        cluster.stop(head)


def test_worker_without_storage_root_refuses(tmp_path: Path, storage: Path) -> None:
    """A worker host on which the storage root is not mounted (the mount point an empty folder): its worker
    refuses the run's jobs (it exits, and the script says so, or it stays and takes none), saying which
    folder, and nothing it did is registered."""
    mount_point = tmp_path / "cpu-mnt"
    mount_point.mkdir()  # on the worker host nothing is mounted here
    with make_hosts(tmp_path, "cpu") as (head, cpu):
        cluster = Cluster(head, storage)
        cluster.start_head()
        try:
            cluster.start_gpu(head, cluster.run_dir, *TRAIN)
            wait_until(lambda: cluster.facts()["queued"] > 0, "self-play jobs queued", timeout_s=180)
            started = cluster.worker_script(cpu, mount_point / "tt", 1)
            if started.returncode == 0:  # the worker runs: give it time to take (and finish) several jobs
                worker = daemon_pid(cpu, "worker.tt.1")
                deadline = time.monotonic() + 60
                while alive(worker) and time.monotonic() < deadline:
                    time.sleep(2)
            facts = cluster.facts()
        finally:
            cluster.stop(cpu)
        log = cpu.state / "logs" / "worker.tt.1.log"
        said = started.stdout + started.stderr + (log.read_text() if log.exists() else "")
        assert str(mount_point / "tt") in said, f"the worker did not name the folder it cannot use:\n{said}"
        assert facts["queued"] > 0, "no job was waiting for the worker: the test proves nothing"
        assert facts["index"] == [] and facts["stats"].get("shards", 0) == 0, f"registered: {facts}"
        assert shard_files(mount_point / "tt" / "replay") == [], "the worker wrote shards to its own disk"
        cluster.stop(head)


def test_storage_root_unmounted_under_running_worker(tmp_path: Path, storage: Path) -> None:
    """The storage root goes away under a working worker (its mount removed in that host's mount namespace):
    the worker stops registering; every listed shard stays one the trainer can read."""
    mount_point = tmp_path / "cpu-mnt"
    mount_point.mkdir()
    with make_hosts(tmp_path, "cpu") as (head, cpu):
        cpu.mounts[mount_point] = storage  # the storage root, mounted at another path on the worker host
        cluster = Cluster(head, storage)
        cluster.start_head()
        try:
            cluster.start_gpu(head, cluster.run_dir, *TRAIN)
            cluster.start_workers(cpu, mount_point / "tt", 1)
            cluster.start_workers(head, cluster.run_dir, 1)
            wait_until(
                lambda: any(cpu.name in f.worker for f in shard_files(cluster.run_dir / "replay")),
                "a shard of the worker host",
                timeout_s=300,
            )
            worker = daemon_pid(cpu, "worker.tt.1")
            unmount = ["nsenter", "-t", str(worker), "-m", "umount", "-l", str(mount_point)]
            done = subprocess.run(unmount, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            unmounted_at = cluster.facts()["stats"].get("shards", 0)
            # The head's worker goes on; give the other one time for several jobs.
            wait_until(
                lambda: cluster.facts()["stats"].get("shards", 0) >= unmounted_at + 4 or not alive(worker),
                "four more shards",
                timeout_s=240,
            )
            time.sleep(5)
        finally:
            cluster.stop(cpu)
            cluster.stop(head, "--keep-redis")
        assert_counted_once(cluster.facts(), cluster.run_dir / "replay")
        log = (cpu.state / "logs" / "worker.tt.1.log").read_text()
        assert str(mount_point / "tt") in log, f"the worker did not name the folder it lost:\n{log}"
        local = shard_files(mount_point / "tt" / "replay")  # what went to the worker host's own disk
        assert local == [], f"shards written beside the storage root: {[f.name for f in local]}"
        cluster.stop(head)
