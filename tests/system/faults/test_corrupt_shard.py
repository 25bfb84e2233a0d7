"""A truncated or corrupt shard on the storage root: set aside with a warning, and training goes on."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import redis
from harness import TINY, TRAINS, Roles, wait_until

from azjobs.storage.replay import shard_names
from azjobs.storage.shards import shard_name
from azjobs.storage.weights import versions_in


def test_corrupt_shards_are_set_aside(roles: Roles, tmp_path: Path, redis_client: redis.Redis) -> None:
    run_dir = tmp_path / "storage" / "cs"
    common = ["--run-dir", str(run_dir)]
    trainer = roles.start("trainer", ["train", *common, *TINY, *TRAINS])
    roles.start("worker", ["worker", *common, "--evaluator", "local"])
    replay = run_dir / "replay"
    wait_until(lambda: len(versions_in(run_dir / "weights")) >= 2, "training to start", timeout_s=150)

    real = replay / shard_names(replay)[0]
    data = real.read_bytes()
    bad = {
        shard_name(time.time(), "truncated"): data[: len(data) // 2],
        shard_name(time.time() + 1, "noise"): np.random.default_rng(0).bytes(len(data)),
        shard_name(time.time() + 2, "empty"): b"",
    }
    for name, content in bad.items():
        tmp = replay / f".tmp-test-{name}"
        tmp.write_bytes(content)
        tmp.rename(replay / name)  # as a writer would: whole, then renamed
    # And one that reads as HDF5 but lies about its arrays: attributes say 50 positions, arrays hold 3.
    lying = shard_name(time.time() + 3, "lying")
    with h5py.File(real) as src, h5py.File(replay / f".tmp-test-{lying}", "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        dst.attrs["positions"] = 50
        for dataset in src:
            dst.create_dataset(dataset, data=src[dataset][:3])
    (replay / f".tmp-test-{lying}").rename(replay / lying)
    bad[lying] = b""

    wait_until(lambda: all((replay / "bad" / name).exists() for name in bad), "the bad shards moved to replay/bad/")
    version_then = versions_in(run_dir / "weights")[-1]
    wait_until(lambda: versions_in(run_dir / "weights")[-1] >= version_then + 2, "training going on", timeout_s=150)
    assert trainer.process.poll() is None
    log = trainer.text()
    for name in bad:
        assert f"bad replay shard {replay / name}" in log and "moved it to" in log
    assert not any(name in shard_names(replay) for name in bad)
    assert real.exists()  # the good ones stay
    assert "Traceback" not in log
