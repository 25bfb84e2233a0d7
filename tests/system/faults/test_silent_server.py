"""A Redis server that stops answering (SIGSTOP): a blocking read ends in an error after the socket timeout
(tens of seconds, so a system test) rather than hanging."""

from __future__ import annotations

import os
import signal
import threading

import redis

from azjobs.cluster import embedded
from azjobs.cluster.connection import SOCKET_TIMEOUT_S, connect
from azjobs.inference.channel import ListChannel


def test_a_blocking_read_on_a_silent_server_is_an_error_not_a_hang() -> None:
    """A head that stops answering (power lost, LAN partitioned; here: SIGSTOP) ends a BLPOP with an error."""
    with embedded.start(unix_socket=False) as server:
        channel = ListChannel(connect(server.url))
        assert channel.blpop("nothing", 0.01) is None
        outcome: list[BaseException | None] = []

        def block() -> None:
            try:
                outcome.append(channel.blpop("nothing", 3600.0))  # asks for longer than the socket timeout
            except redis.RedisError as e:
                outcome.append(e)

        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            reader = threading.Thread(target=block, daemon=True)
            reader.start()
            reader.join(timeout=3 * SOCKET_TIMEOUT_S)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert not reader.is_alive(), "the blocking read hung on a silent server"
        assert len(outcome) == 1 and isinstance(outcome[0], redis.TimeoutError)
        assert channel.blpop("nothing", 0.01) is None  # it reconnects once the server answers again
