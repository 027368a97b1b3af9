"""Storage engines for the inbox and conversation state, chosen by URL.

| URL | engine |
|---|---|
| ``None``, ``"memory://"`` | ``MemoryInboxStore`` / ``MemoryStateStore`` (the default) |
| ``"sqlite:///bot.db"`` | ``SqliteInboxStore`` / ``SqliteStateStore``, file ``bot.db`` (relative) |
| ``"sqlite:////var/lib/bot.db"`` | the same, absolute path ``/var/lib/bot.db`` |
| ``"sqlite://"``, ``"sqlite:///:memory:"`` | SQLite in memory (tests) |

| ``"redis://[:password@]host:6379/0"`` | ``RedisInboxStore`` / ``RedisStateStore`` (shared) |
| ``"rediss://…"`` | the same over TLS |

A SQLite URL may end in ``?synchronous=full`` to fsync every commit (see ``imbot.storage.sqlite``).
Inbox and state may share one file.

A Redis URL may end in ``?prefix=imbot&lease=5``: the prefix of every key (bots sharing a
server need different ones) and the seconds a process holds a conversation without renewing
(a dead process's conversations are taken over after about that long). Redis needs the
``redis`` extra: ``pip install 'imbot-kit[redis]'``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from imbot.errors import ConfigError
from imbot.storage.base import InboxStore, StateStore
from imbot.storage.memory import MemoryInboxStore, MemoryStateStore
from imbot.storage.redis_conn import DEFAULT_LEASE, DEFAULT_PREFIX, RedisTarget
from imbot.storage.sqlite import SqliteInboxStore, SqliteStateStore, Synchronous

__all__ = [
    "MemoryInboxStore",
    "MemoryStateStore",
    "SqliteInboxStore",
    "SqliteStateStore",
    "StorageURL",
    "open_inbox_store",
    "open_state_store",
    "parse_storage_url",
]


@dataclass(frozen=True, slots=True)
class StorageURL:
    """A parsed storage URL.

    Attributes:
        scheme: ``"memory"``, ``"sqlite"`` or ``"redis"`` (also for ``rediss://``).
        path: the SQLite file (``":memory:"`` for an in-memory database); empty otherwise.
        synchronous: the SQLite durability level.
        redis: the Redis server, prefix and lease; ``None`` unless the scheme is redis.
    """

    scheme: str
    path: str = ""
    synchronous: Synchronous = "normal"
    redis: RedisTarget | None = None


_HELP = (
    'use "memory://" (the default), "sqlite:///path/to/bot.db" '
    '(four slashes for an absolute path: "sqlite:////var/lib/bot.db") or '
    '"redis://host:6379/0" (several processes sharing one store)'
)


def _parse_redis(url: str, rest: str, scheme: str) -> StorageURL:
    location, _, query = rest.partition("?")
    prefix, lease = DEFAULT_PREFIX, DEFAULT_LEASE
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "prefix" and value and value.isprintable() and " " not in value:
            prefix = value
        elif key == "lease":
            try:
                lease = float(value)
            except ValueError:
                lease = 0.0
            if not 0.5 <= lease <= 3600:
                raise ConfigError(
                    f"storage URL {url!r}: lease={value!r} must be seconds between 0.5 and 3600"
                )
        else:
            raise ConfigError(
                f"storage URL {url!r}: unknown option {key}={value!r}; the options are "
                "prefix=NAME (no spaces) and lease=SECONDS"
            )
    if not location or location.startswith("/"):
        raise ConfigError(f"storage URL {url!r} names no host; e.g. redis://127.0.0.1:6379/0")
    return StorageURL("redis", redis=RedisTarget(f"{scheme}://{location}", prefix, lease))


def parse_storage_url(url: str | None) -> StorageURL:
    """Parse a storage URL.

    Args:
        url: the URL, or ``None`` for memory.

    Raises:
        ConfigError: the scheme is unknown or an option is invalid.
    """
    if url is None or url in ("memory://", "memory:", "memory"):
        return StorageURL("memory")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"storage URL {url!r} has no scheme; {_HELP}")
    if scheme == "memory":
        raise ConfigError(f'storage URL {url!r}: "memory://" takes no path or options')
    if scheme in ("redis", "rediss"):
        return _parse_redis(url, rest, scheme)
    if scheme != "sqlite":
        raise ConfigError(f"storage scheme {scheme!r} is not supported; {_HELP}")
    location, _, query = rest.partition("?")
    synchronous: Synchronous = "normal"
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "synchronous" or value.lower() not in ("normal", "full"):
            raise ConfigError(
                f"storage URL {url!r}: unknown option {key}={value!r}; the one option is "
                "synchronous=normal|full"
            )
        synchronous = "full" if value.lower() == "full" else "normal"
    if location in ("", "/", "/:memory:"):
        return StorageURL("sqlite", ":memory:", synchronous)
    if not location.startswith("/"):
        raise ConfigError(f"storage URL {url!r} has a host part; {_HELP}")
    # Like SQLAlchemy: what follows "sqlite:///" is the path, relative unless it starts with /.
    return StorageURL("sqlite", unquote(location[1:]), synchronous)


def open_inbox_store(url: str | None) -> InboxStore:
    """Open the inbox engine a storage URL names.

    Raises:
        ConfigError: the URL is not supported, or it names Redis and redis-py is missing.
    """
    parsed = parse_storage_url(url)
    if parsed.scheme == "memory":
        return MemoryInboxStore()
    if parsed.redis is not None:
        from imbot.storage.redis_inbox import RedisInboxStore

        return RedisInboxStore(parsed.redis)
    try:
        return SqliteInboxStore(parsed.path, synchronous=parsed.synchronous)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the SQLite inbox at {parsed.path!r}: {exc}") from exc


def open_state_store(url: str | None) -> StateStore:
    """Open the state engine a storage URL names.

    Raises:
        ConfigError: the URL is not supported, or it names Redis and redis-py is missing.
    """
    parsed = parse_storage_url(url)
    if parsed.scheme == "memory":
        return MemoryStateStore()
    if parsed.redis is not None:
        from imbot.storage.redis_state import RedisStateStore

        return RedisStateStore(parsed.redis)
    try:
        return SqliteStateStore(parsed.path, synchronous=parsed.synchronous)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the SQLite state store at {parsed.path!r}: {exc}") from exc
