"""The connection under the Redis engines: what a ``redis://`` URL names, and its errors.

``RedisTarget`` is the parsed URL (the server, imbot's key prefix and the lease). ``connect``
opens redis-py's asyncio client (``pip install 'imbot-kit[redis]'``); ``unavailable`` turns
what redis-py raises when the server is out of reach (refused, reset, timed out, loading its
data, a read-only replica after a failover) into ``StoreUnavailable``, which the bot treats
as transient: webhooks are answered 503, handlers and lanes wait and go on.

The client retries a failed command once on a fresh connection (a server restart leaves the
pooled connections broken) and then gives up quickly: a webhook must not wait seconds for
an answer it can get from Inkbox's redelivery.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from imbot.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_PREFIX",
    "INSTALL_HINT",
    "RedisTarget",
    "connect",
    "load_redis",
    "unavailable",
]

DEFAULT_PREFIX = "imbot"
"""The key prefix when the URL names none: every key imbot writes starts with ``imbot:``."""
DEFAULT_LEASE = 5.0
"""Seconds a process holds a conversation without renewing (``?lease=``)."""
INSTALL_HINT = "pip install 'imbot-kit[redis]'"

_CONNECT_TIMEOUT = 2.0
_COMMAND_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A Redis server and imbot's place in it, from a ``redis://`` or ``rediss://`` URL.

    Attributes:
        url: the connection URL handed to redis-py (imbot's own options removed).
        prefix: the key prefix; bots sharing a server need different prefixes.
        lease: seconds a process holds a conversation's lane without renewing it; a process
            that dies is taken over after about this long.
    """

    url: str
    prefix: str = DEFAULT_PREFIX
    lease: float = DEFAULT_LEASE

    @property
    def display(self) -> str:
        """The server for messages and logs: scheme, host, port and database, no password."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path or '/0'}"

    @property
    def lease_ms(self) -> int:
        """The lease in milliseconds."""
        return max(1, round(self.lease * 1000))


def load_redis() -> ModuleType:
    """Import ``redis.asyncio``, or say which extra brings it.

    Raises:
        ConfigError: redis-py is not installed.
    """
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError:
        raise ConfigError(f"a redis:// store needs the redis package: {INSTALL_HINT}") from None


def connect(target: RedisTarget, **options: Any) -> redis.asyncio.Redis:
    """Open a client for the target (connections are made on first use).

    Args:
        target: the server.
        **options: more keyword arguments for ``redis.asyncio.Redis`` (tests use
            ``single_connection_client=True`` for a blocking reader).

    Raises:
        ConfigError: redis-py is missing, or the URL is one it refuses.
    """
    client_module = load_redis()
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    settings: dict[str, Any] = {
        "socket_connect_timeout": _CONNECT_TIMEOUT,
        "socket_timeout": _COMMAND_TIMEOUT,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 30,
        "client_name": f"imbot:{target.prefix}",
    }
    settings.update(options)
    try:
        client: redis.asyncio.Redis = client_module.Redis.from_url(target.url, **settings)
    except ValueError as exc:
        raise ConfigError(f"storage URL {target.display!r}: {exc}") from None
    return client


def _unavailable_types() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ReadOnlyError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError, TimeoutError)


class _Unavailable:
    """A context manager (reused, no allocation per use) mapping outages to ``StoreUnavailable``."""

    __slots__ = ("_target", "_types")

    def __init__(self, target: RedisTarget) -> None:
        self._target = target
        self._types = _unavailable_types()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None and isinstance(exc, self._types):
            raise StoreUnavailable(
                f"Redis at {self._target.display} is unreachable: {exc or type(exc).__name__}"
            ) from exc


def unavailable(target: RedisTarget) -> _Unavailable:
    """A reusable ``with`` block that turns a Redis outage into ``StoreUnavailable``.

    Example:
        >>> guard = unavailable(target)
        >>> with guard:
        ...     await client.get("k")
    """
    return _Unavailable(target)
