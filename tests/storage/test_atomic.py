"""Temporary files name their writer; a sweep removes those of dead writers on this host and old ones
of any host, never a live writer's; a name lands once however many writers try."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from azjobs.storage import atomic
from azjobs.storage.sweep import sweep_temps

# A writer that is killed halfway: its temporary file is left as a real kill leaves it.
WRITER = """
import sys, time
from pathlib import Path
from azjobs.storage.atomic import temp_path
tmp = temp_path(Path(sys.argv[1]))
with open(tmp, "wb") as f:
    f.write(b"half a shard")
    f.flush()
    print(tmp, flush=True)
    time.sleep(600)
"""


def killed_writer(final: Path) -> Path:
    """Start a writer of `final`, kill it mid-write; the temporary file it left."""
    final.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    tmp = Path(process.stdout.readline().strip())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    return tmp


def test_a_killed_writers_temporary_files_are_swept(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    left = [
        killed_writer(run_dir / "replay" / "20260101T000000.000000Z-j.h5"),
        killed_writer(run_dir / "weights" / "v000003.safetensors"),
        killed_writer(run_dir / "checkpoints" / "ckpt-000000010.safetensors"),
    ]
    assert all(p.exists() and p.name.startswith(f".tmp-{atomic.host()}+") for p in left)
    said: list[str] = []
    assert sweep_temps(run_dir, said.append) == 3
    assert not any(p.exists() for p in left)
    assert said == [f"removed 3 temporary files left by killed writers in {run_dir}"]


def test_a_live_writers_and_another_hosts_young_files_stay(tmp_path: Path) -> None:
    mine = atomic.temp_path(tmp_path / "a.h5")
    mine.write_bytes(b"being written")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        theirs_live = tmp_path / f".tmp-{atomic.host()}+{live.pid}+0badc0de-b.h5"
        theirs_live.write_bytes(b"x")
        other_host = tmp_path / ".tmp-gpu-box.lan+1+0badc0de-c.h5"  # pid 1 there: nothing to ask
        other_host.write_bytes(b"x")
        assert atomic.sweep(tmp_path) == []
        # An hour later no write is still going on, whoever it was.
        old = time.time() - atomic.STALE_AFTER_S - 60
        os.utime(other_host, (old, old))
        assert atomic.sweep(tmp_path) == [other_host]
        assert mine.exists() and theirs_live.exists()
    finally:
        live.kill()
        live.wait()


def test_finished_files_are_never_swept(tmp_path: Path) -> None:
    done = tmp_path / "v000001.safetensors"
    done.write_bytes(b"w")
    old = time.time() - 10 * atomic.STALE_AFTER_S
    os.utime(done, (old, old))
    assert atomic.sweep(tmp_path) == [] and done.exists()


def test_a_name_lands_once(tmp_path: Path) -> None:
    final = tmp_path / "f"
    first, second = atomic.temp_path(final), atomic.temp_path(final)
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    assert atomic.land_new(first, final) is True
    assert atomic.land_new(second, final) is False
    assert final.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_temporary_names_fit_long_host_names(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(atomic.socket, "gethostname", lambda: "pod_" + "x" * 200 + ".cluster.local")
    name = atomic.temp_path(tmp_path / "v000001.safetensors").name
    assert atomic._OWNER.match(name) and len(atomic.host()) == 64
