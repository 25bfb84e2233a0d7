"""The inference lists' own connection: raw replies as the callers want them, errors as redis-py's."""

from __future__ import annotations

import time

import pytest
import redis

from azjobs.inference.channel import ListChannel


def test_list_commands(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    assert channel.rpush("l", b"a") == 1 and channel.rpush("l", memoryview(b"bcd")[1:]) == 2
    assert channel.lpop("l", 5) == [b"a", b"cd"] and channel.lpop("l", 5) is None
    channel.rpush("l", b"e")
    assert channel.blpop("l", 0.05) == b"e" and channel.blpop("l", 0.05) is None
    channel.push_many([("x", b"1"), ("y", b"2"), ("x", b"3")], {"x": 300})
    assert redis_client.lrange("x", 0, -1) == [b"1", b"3"] and 0 < redis_client.ttl("x") <= 300
    assert redis_client.ttl("y") == -1
    channel.close()


def test_a_command_error_is_raised(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    redis_client.set("s", "not a list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        channel.rpush("s", b"x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        channel.push_many([("s", b"x")], {})
    assert channel.rpush("fine", b"x") == 1  # the connection is still good


def test_a_lost_connection_raises_and_the_next_command_reconnects(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    own_id = channel._call("CLIENT", "ID")
    redis_client.client_kill_filter(_id=own_id)
    with pytest.raises(redis.ConnectionError):
        channel.rpush("l", b"lost")
    assert channel.rpush("l", b"again") >= 1
    assert redis_client.lrange("l", -1, -1) == [b"again"]


def test_an_error_inside_a_pipeline_leaves_the_connection_in_step(redis_client: redis.Redis) -> None:
    """Every reply of the pipeline is read even when one is an error (OOM, WRONGTYPE): the next command's
    answer is its own."""
    channel = ListChannel(redis_client)
    redis_client.set("s", "not a list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        channel.push_many([("s", b"x"), ("l", b"1"), ("l", b"2")], {"l": 300})
    assert channel.rpush("fresh", b"x") == 1
    assert channel.lpop("fresh", 5) == [b"x"]
    assert redis_client.lrange("l", 0, -1) == [b"1", b"2"]


def test_pushes_not_waited_for_are_acknowledged_with_a_later_command(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    redis_client.set("s", "not a list")
    channel.rpush_later("l", b"a")
    channel.rpush_later("s", b"refused")
    channel.push_many([("l", b"b"), ("l", b"c")], {"l": 300}, wait=False)
    assert channel.unread == 5
    assert channel.lpop("l", 2) == [b"a", b"b"]  # its own reply, after the acknowledgements before it
    assert channel.unread == 0 and 0 < redis_client.ttl("l") <= 300
    (error,) = channel.take_errors()
    assert isinstance(error, redis.ResponseError) and "WRONGTYPE" in str(error)
    assert channel.take_errors() == []
    channel.rpush_later("l", b"d")
    channel.settle()
    assert channel.unread == 0 and redis_client.lrange("l", 0, -1) == [b"c", b"d"]


def test_a_held_push_goes_out_with_the_next_command(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    channel.rpush_later("l", b"held", hold=True)
    assert redis_client.llen("l") == 0 and channel.unread == 0  # not sent yet
    assert channel.blpop("l", 0.05) == b"held"  # one write: the push, then the pop that finds it
    channel.rpush_later("gone", b"x", hold=True)
    channel.close()  # what is held dies with the channel
    assert redis_client.llen("gone") == 0


def test_an_lpop_sent_ahead_is_answered_in_turn(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    redis_client.rpush("q", b"1", b"2", b"3")
    channel.lpop_later("q", 2)
    channel.rpush_later("q", b"4")
    assert channel.lpop("q", 1) == [b"3"]  # the LPOP sent ahead took 1 and 2 first
    assert channel.result() == [b"1", b"2"]
    channel.lpop_later("q", 5)
    assert channel.result() == [b"4"]
    with pytest.raises(ValueError, match="no command awaits"):
        channel.result()


def test_a_lost_connection_forgets_what_was_due_but_not_what_was_read(redis_client: redis.Redis) -> None:
    channel = ListChannel(redis_client)
    redis_client.rpush("q", b"1", b"2")
    channel.lpop_later("q", 1)
    channel.settle()  # its reply is read, and kept for `result`
    redis_client.client_kill_filter(_id=channel._call("CLIENT", "ID"))
    with pytest.raises(redis.ConnectionError):  # on writing, or on reading its reply
        channel.lpop_later("q", 1)
        channel.settle()
    assert channel.unread == 0 and channel.result() == [b"1"]
    with pytest.raises(ValueError, match="no command awaits"):
        channel.result()  # the LPOP on the lost connection (it may or may not have run) is not waited for
    assert channel.rpush("q", b"3") >= 1  # a new connection, in step


def test_a_refused_push_ends_the_blpop_after_it(redis_client: redis.Redis) -> None:
    """Out of memory or read-only, a worker's push is refused: its BLPOP does not wait out its timeout."""
    channel = ListChannel(redis_client)
    redis_client.set("s", "not a list")
    channel.rpush_later("s", b"refused", hold=True)
    started = time.monotonic()
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        channel.blpop("replies", 5.0)
    assert time.monotonic() - started < 4.0 and channel.unread == 0
    deadline = time.monotonic() + 10
    while redis_client.info("clients")["blocked_clients"] and time.monotonic() < deadline:
        time.sleep(0.01)  # Redis has not seen the abandoned connection close yet
    redis_client.rpush("replies", b"r")
    assert channel.blpop("replies", 1.0) == b"r"  # the pop abandoned took nothing; a new connection is in step
