"""The few Redis list commands of the inference path, on a dedicated connection and without redis-py's
per-command layers (connection pool, retry wrapper, response callbacks): about 8 us of CPU per
command instead of about 30 on loopback, which is most of what moving a request costs.

Only list commands whose raw replies are what the caller wants (integers, bulk strings, arrays of
them). A failed command drops the connection (the next one reconnects) and raises
`redis.ConnectionError`, as the regular client would. The connection has the pool's socket timeout
and keepalive (`azjobs.cluster.connection`); a BLPOP never blocks longer than `MAX_BLOCK_S`, so a silent
Redis is a `redis.TimeoutError`, not a hang. Commands are written with one `sendmsg` straight from the
callers' buffers (a reply's parts are never joined) and their replies read by a hiredis reader of the
channel's own. Pushes need not wait for their acknowledgements (read with a later command), and an LPOP
can be sent ahead of the moment its requests are needed: each wait for Redis is a sleep and a wake-up of
both processes, which is most of what the inference path costs on a busy machine.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Union

import hiredis
import redis
import redis.connection
from redis._parsers import BaseParser

from azjobs.cluster.connection import MAX_BLOCK_S

# One value, or its consecutive parts; memoryviews one-dimensional, of bytes (len() is their size).
Value = Union[bytes, memoryview, Sequence[Union[bytes, memoryview]]]
Command = tuple[Union[str, Value], ...]  # a command's name, its text arguments (keys, counts), then values
READ_SIZE = 1 << 18  # bytes per recv: a few requests' worth
IOV_MAX = 512  # buffers per sendmsg, below the system's limit (1024 on Linux)
HEADS_MAX = 4096  # encoded command heads kept (name and key: a few per client); forgotten all at once past this
_HEADS: dict[tuple[Any, ...], bytes] = {}  # (leading text arguments..., argument count) -> their encoding


# What becomes of a command's reply: returned by the call that sent it, kept for `result()`, or an
# acknowledgement (only an error reply is kept, for `take_errors()`).
NOW, LATER, ACK = 0, 1, 2


class ListChannel:
    """RPUSH / LPOP / BLPOP on one connection of `client`'s pool settings (URL, password, db).

    Besides commands that wait for their reply, two kinds that do not: pushes whose replies are only
    acknowledgements (`rpush_later`, `push_many(wait=False)`: read with a later command, an error reply
    kept for `take_errors`), and an LPOP sent ahead (`lpop_later`) whose reply `result()` returns. Replies
    come in the order the commands went out, so each is matched to its command.
    """

    def __init__(self, client: redis.Redis) -> None:
        connection = client.connection_pool.make_connection()
        if not isinstance(connection, redis.connection.AbstractConnection):
            raise TypeError(f"a ListChannel needs a socket connection, not {type(connection).__name__}")
        self._connection = connection
        self._reader = hiredis.Reader()
        self._read_buffer = bytearray(READ_SIZE)
        self._held: list[Command] = []  # acknowledged commands written with the next one that goes out
        self._expect: deque[int] = deque()  # NOW, LATER or ACK per command written whose reply is not read yet
        self._results: deque[Any] = deque()  # replies to LATER commands, read, not yet taken by `result()`
        self._errors: list[redis.RedisError] = []  # error replies to ACK commands, until `take_errors`

    def _call(self, *args: Any) -> Any:
        (reply,) = self._raw([args])
        if isinstance(reply, redis.RedisError):
            raise reply
        return reply

    def rpush(self, key: str, value: bytes | memoryview) -> int:
        return self._call("RPUSH", key, value)

    def rpush_later(self, key: str, value: bytes | memoryview, *, hold: bool = False) -> None:
        """RPUSH without waiting for Redis (an acknowledgement). Written now (the value may change at once
        after), or with `hold` in the same write as the next command (the value must stay unchanged until
        then): one wake-up of Redis for both."""
        if hold:
            self._held.append(("RPUSH", key, value))
        else:
            self._write([("RPUSH", key, value)], ACK)

    def lpop(self, key: str, count: int) -> list[bytes] | None:
        return self._call("LPOP", key, str(count))

    def lpop_later(self, key: str, count: int) -> None:
        """LPOP sent now, its reply read later: `result()` returns it (Redis answers while the caller works)."""
        self._write([("LPOP", key, str(count))], LATER)

    def result(self) -> Any:
        """The reply to the oldest command sent with `*_later` that expects one (an error reply raised)."""
        if not self._results:
            if LATER not in self._expect:
                raise ValueError("no command awaits its reply")
            self._read(lambda: bool(self._results))
        reply = self._results.popleft()
        if isinstance(reply, redis.RedisError):
            raise reply
        return reply

    def blpop(self, key: str, timeout_s: float) -> bytes | None:
        """The head of `key`, waiting up to `timeout_s` but at most MAX_BLOCK_S (Redis 6 takes fractions of a
        second); None if none came. A push refused before it (out of memory, read-only) ends the wait: the
        connection is dropped, abandoning the BLPOP, and the refusal raised (a value pushed before Redis sees
        the connection closed is lost with it: a reply, which its client resends for)."""
        command = ("BLPOP", key, f"{min(max(timeout_s, 0.001), MAX_BLOCK_S):.3f}")
        self._write([command], NOW)
        replies: list[Any] = []
        self._read(lambda: bool(replies), replies, refusal_ends=True)
        if isinstance(replies[0], redis.RedisError):
            raise replies[0]
        return None if replies[0] is None else replies[0][1]

    def push_many(self, items: Sequence[tuple[str, Value]], expire: dict[str, int], *, wait: bool = True) -> None:
        """RPUSH each (key, value), then EXPIRE each key of `expire` (seconds), in one write; with `wait`, the
        first error reply is raised, else the replies are acknowledgements (`take_errors`)."""
        parts = _push_parts(items, expire)
        count = len(items) + len(expire)
        if not wait:
            self._write_parts(parts, count, ACK)
            return
        # Every reply is read even when one is an error (OOM, WRONGTYPE), so none is ever taken for the
        # answer to a later command.
        self._write_parts(parts, count, NOW)
        replies: list[Any] = []
        self._read(lambda: len(replies) == count, replies)
        first = next((reply for reply in replies if isinstance(reply, redis.RedisError)), None)
        if first is not None:
            raise first

    def take_errors(self) -> list[redis.RedisError]:
        """The error replies to acknowledged commands, read since the last call (oldest first)."""
        errors, self._errors = self._errors, []
        return errors

    @property
    def unread(self) -> int:
        """Commands written whose replies are not read yet."""
        return len(self._expect)

    def settle(self) -> None:
        """Read every reply still due (errors among acknowledgements: `take_errors`; LATER ones: `result`)."""
        self._write([], ACK)
        self._read(lambda: not self._expect)

    def _write(self, commands: Sequence[Command], kind: int) -> None:
        """Write the held commands and these in one go."""
        self._write_parts([part for command in commands for part in _resp(command)], len(commands), kind)

    def _write_parts(self, parts: list[bytes | memoryview], count: int, kind: int) -> None:
        """Write the held commands and `count` commands encoded as `parts`, in one go."""
        held, self._held = self._held, []
        if not held and not count:
            return
        if held:
            parts = [part for command in held for part in _resp(command)] + parts
        connection = self._connection
        try:
            sock = self._socket()
            if sock is None:  # redis-py connects, authenticates, selects the db
                connection.connect()
                sock = self._socket()
                assert sock is not None
                _kernel_timeouts(sock)
            _send(sock, parts)
        except BlockingIOError as e:  # the kernel's send timeout: Redis reads nothing
            raise self._lost(redis.TimeoutError(f"Redis does not read: {e}")) from e
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            raise self._lost(e) from e
        if held:
            self._expect.extend([ACK] * len(held))
        self._expect.extend([kind] * count)

    def _raw(self, commands: Sequence[Command]) -> list[Any]:
        """Send the commands in one write and read one reply each (and those due before them); an error reply
        is returned as redis-py's exception for it (OutOfMemoryError, ReadOnlyError, ResponseError), not
        raised."""
        self._write(commands, NOW)
        replies: list[Any] = []
        self._read(lambda: len(replies) == len(commands), replies)
        return replies

    def _read(self, done: Callable[[], bool], replies: list[Any] | None = None, refusal_ends: bool = False) -> None:
        """Read replies in order, each where its kind says, until `done()`; with `refusal_ends`, an error among
        the acknowledgements ends the wait once the replies already received are read."""
        try:
            while not done():
                reply = self._reader.gets()
                if reply is False and refusal_ends and self._errors:
                    error = self._errors.pop(0)
                    raise self._lost(error) from None
                if reply is False:  # more bytes needed
                    sock = self._socket()
                    if sock is None:
                        raise redis.ConnectionError("the connection to Redis is closed")
                    n = sock.recv_into(self._read_buffer)
                    if n == 0:
                        raise redis.ConnectionError("Redis closed the connection")
                    # hiredis' stub says str or bytes; feed takes any buffer, and reads this one without a copy.
                    self._reader.feed(self._read_buffer, 0, n)  # type: ignore[arg-type]
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    reply = BaseParser.parse_error(str(reply))  # redis-py's exception class for the reply
                kind = self._expect.popleft()
                if kind == NOW:
                    assert replies is not None
                    replies.append(reply)
                elif kind == LATER:
                    self._results.append(reply)
                elif isinstance(reply, redis.RedisError):
                    self._errors.append(reply)
        except (TimeoutError, BlockingIOError) as e:  # the socket's timeout: Redis silent for SOCKET_TIMEOUT_S
            raise self._lost(redis.TimeoutError(f"Redis did not answer: {e}")) from e
        except (redis.ConnectionError, redis.TimeoutError, OSError, hiredis.ProtocolError) as e:
            raise self._lost(e) from e

    def _socket(self) -> socket.socket | None:
        """redis-py's socket of the connection, None while unconnected (private to redis-py: the channel writes
        and reads it itself, without redis-py's layers)."""
        sock: socket.socket | None = getattr(self._connection, "_sock")
        return sock

    def _lost(self, e: Exception) -> redis.RedisError:
        """Drop the connection: replies not read are lost with it (their commands may or may not have run),
        what was held is not sent; replies read already are kept for `result`."""
        self._connection.disconnect()
        self._reader = hiredis.Reader()
        self._held = []
        self._expect.clear()
        return e if isinstance(e, redis.RedisError) else redis.ConnectionError(str(e))

    def close(self) -> None:
        self._held = []
        self._expect.clear()
        self._results.clear()
        self._connection.disconnect()


def _resp(command: Command) -> list[bytes | memoryview]:
    """A command in the Redis protocol, as buffers to write one after the other (values not copied). The
    encoding of its leading text arguments is kept: command names and keys recur with every batch."""
    texts = 0
    while texts < len(command) and isinstance(command[texts], str):
        texts += 1
    head_key = (*command[:texts], len(command))
    head = _HEADS.get(head_key) or _head(head_key)
    parts: list[bytes | memoryview] = [head]
    for arg in command[texts:]:
        if isinstance(arg, str):
            parts.append(_bulk(arg.encode()))
            continue
        pieces = [arg] if isinstance(arg, (bytes, memoryview)) else list(arg)
        parts.append(b"$%d\r\n" % sum(map(len, pieces)))
        parts += pieces
        parts.append(b"\r\n")
    return parts


def _head(head_key: tuple[Any, ...]) -> bytes:
    """The encoding of a command's leading text arguments (`head_key`: those, then the argument count), kept."""
    if len(_HEADS) >= HEADS_MAX:
        _HEADS.clear()
    *texts, count = head_key
    head = _HEADS[head_key] = b"*%d\r\n" % count + b"".join(_bulk(text.encode()) for text in texts)
    return head


def _push_parts(items: Sequence[tuple[str, Value]], expire: dict[str, int]) -> list[bytes | memoryview]:
    """`_resp` of RPUSH key value for each item, then of EXPIRE key seconds for each of `expire`: the same
    buffers, with fewer steps (a server pushes every reply this way)."""
    parts: list[bytes | memoryview] = []
    for key, value in items:
        pieces = (value,) if isinstance(value, (bytes, memoryview)) else value
        parts += (
            _HEADS.get(("RPUSH", key, 3)) or _head(("RPUSH", key, 3)),
            b"$%d\r\n" % sum(map(len, pieces)),
            *pieces,
            b"\r\n",
        )
    for key, seconds in expire.items():
        command = ("EXPIRE", key, str(seconds), 3)
        parts.append(_HEADS.get(command) or _head(command))
    return parts


def _bulk(raw: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def _kernel_timeouts(sock: socket.socket) -> None:
    """The socket's timeout kept by the kernel (SO_RCVTIMEO, SO_SNDTIMEO) instead of Python, which polls
    before every recv and send of a socket with a timeout: one system call per read or write, not two.
    A timeout is then a BlockingIOError. TLS sockets keep Python's timeout."""
    timeout = sock.gettimeout()
    if isinstance(sock, ssl.SSLSocket) or timeout is None:
        return
    seconds = int(timeout)
    interval = struct.pack("ll", seconds, int((timeout - seconds) * 1e6))  # struct timeval
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)
    sock.settimeout(None)


def _send(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    """The parts in gather writes (sendmsg) of at most IOV_MAX buffers; whatever a full socket buffer
    leaves of one, with sendall. Through TLS, which has no gather write, joined."""
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(b"".join(parts))
        return
    for start in range(0, len(parts), IOV_MAX):
        chunk = parts[start : start + IOV_MAX]
        sent = sock.sendmsg(chunk)
        if sent < sum(map(len, chunk)):
            sock.sendall(memoryview(b"".join(chunk))[sent:])
