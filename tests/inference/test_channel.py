"""The inference lists' own connection: raw replies as the callers want them, errors as redis-py's."""

from __future__ import annotations

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
