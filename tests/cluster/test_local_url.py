"""`.local-redis-url`: honoured only while the `azjobs run` that wrote it lives, and only if it is the user's own
file naming the user's own unix socket; a planted or copied one never sends the CLI (or the password) elsewhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from azjobs.cli import main
from azjobs.cluster.local_mode import LOCAL_URL_FILE, read_url_file, write_url_file
from azjobs.errors import AzjobsError

RUN = "lu"


@pytest.fixture
def run_dir(tmp_path: Path, redis_client: redis.Redis) -> Path:
    folder = tmp_path / RUN
    folder.mkdir()
    redis_client.set("lu:here", "yes")
    return folder


def status(run_dir: Path, **env: str):  # type: ignore[no-untyped-def]
    clean = {k: None for k in os.environ if k.startswith("AZJOBS_")}
    return CliRunner().invoke(main, ["status", "--json", "--run-dir", str(run_dir)], env={**clean, **env})


def test_the_live_run_is_found(run_dir: Path, redis_url: str) -> None:
    path = write_url_file(run_dir, redis_url)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_url_file(run_dir) == redis_url
    done = status(run_dir)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["run"] == RUN


def test_a_file_whose_run_ended_is_ignored(run_dir: Path, redis_url: str) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    write_url_file(run_dir, redis_url, pid=ended.pid)
    assert read_url_file(run_dir) is None
    # The same pid, reused by another process, is not the run either.
    write_url_file(run_dir, redis_url)
    found = json.loads((run_dir / LOCAL_URL_FILE).read_text())
    (run_dir / LOCAL_URL_FILE).write_text(json.dumps({**found, "started": "1"}))
    assert read_url_file(run_dir) is None
    # A copy from another host (a shared storage root) names nothing here.
    write_url_file(run_dir, redis_url)
    found = json.loads((run_dir / LOCAL_URL_FILE).read_text())
    (run_dir / LOCAL_URL_FILE).write_text(json.dumps({**found, "host": "another-host"}))
    assert read_url_file(run_dir) is None


class Listener:
    """A TCP port on loopback that notes whether anything connected to it (and what it sent)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(4096))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_a_planted_network_url_is_refused_and_never_contacted(run_dir: Path) -> None:
    listener = Listener()
    try:
        write_url_file(run_dir, f"redis://127.0.0.1:{listener.port}/0")
        done = status(run_dir, AZJOBS_REDIS_PASSWORD="do-not-send-me")
        assert done.exit_code != 0
        assert f"refusing {run_dir / LOCAL_URL_FILE}: it names a network address" in done.output
        assert "Traceback" not in done.output
    finally:
        listener.close()
    assert listener.received == []


def test_a_file_others_can_write_or_a_link_is_refused(run_dir: Path, redis_url: str, tmp_path: Path) -> None:
    path = write_url_file(run_dir, redis_url)
    path.chmod(0o644)
    with pytest.raises(AzjobsError, match="not yours alone"):
        read_url_file(run_dir)
    target = tmp_path / "elsewhere"
    path.rename(target)
    target.chmod(0o600)
    path.symlink_to(target)
    with pytest.raises(AzjobsError, match="cannot be opened as a plain file"):
        read_url_file(run_dir)
    path.unlink()
    path.write_text(redis_url + "\n")  # the old plain format, or anything else
    path.chmod(0o600)
    with pytest.raises(AzjobsError, match="not what `azjobs run` writes"):
        read_url_file(run_dir)


def test_a_socket_path_that_is_not_a_socket_is_refused(run_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "redis.sock"
    fake.write_text("")
    write_url_file(run_dir, f"unix://{fake}")
    with pytest.raises(AzjobsError, match="is not a unix socket of yours"):
        read_url_file(run_dir)
    write_url_file(run_dir, f"unix://{tmp_path / 'gone.sock'}")
    with pytest.raises(AzjobsError, match="does not exist"):
        read_url_file(run_dir)
