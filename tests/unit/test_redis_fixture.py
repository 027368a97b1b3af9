"""The ``redis_server`` fixture keeps what it acknowledged across a stop and a start (AOF)."""

from __future__ import annotations

from tests.support.redis_server import RedisServer


def test_a_write_survives_a_restart_of_the_server(redis_server: RedisServer) -> None:
    assert redis_server.command("SET", "greeting", "hi").startswith(b"+OK")
    redis_server.stop()
    assert not redis_server.running
    redis_server.start()
    assert redis_server.command("GET", "greeting") == b"$2\r\nhi\r\n"


def test_each_test_starts_with_an_empty_server(redis_server: RedisServer) -> None:
    assert redis_server.command("DBSIZE") == b":0\r\n"
