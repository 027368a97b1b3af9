"""The webhook server's limits: their defaults, their checks, and the small accounting they need.

What each limit defends against, and where it is enforced:

- ``header_timeout``, ``max_connections``: slow or idle clients holding connections (and file
  descriptors) for ever; ``imbot.bot.listener.Listener``, under ``serve_app``;
- ``body_timeout``, ``max_buffered_bytes``: slow bodies, and bodies that pin memory before
  their signature can be checked; the webhook handler in ``imbot.bot.server``.

``ByteBudget`` counts the buffered bytes, and ``read_capped`` reads a body within it and
within ``max_body_size``. ``LogThrottle`` turns a storm of one kind of log line (refused
connections, clients cut off) into one line per interval with a count.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from imbot.errors import SetupError
from imbot.log import get_logger

if TYPE_CHECKING:
    from aiohttp.streams import StreamReader

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "FD_RESERVE",
    "ByteBudget",
    "LogThrottle",
    "check_limits",
    "connection_cap",
    "open_files_limit",
    "read_capped",
]

DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a connection has to send a request's headers (from opening, or its last response)."""

DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a webhook request has to send its whole body once its headers are in."""

DEFAULT_MAX_CONNECTIONS = 1024
"""Connections held at once; lowered to fit under the open-files limit (see ``FD_RESERVE``)."""

DEFAULT_MAX_BUFFERED_BYTES = 16 * 1_048_576
"""Bytes of webhook bodies buffered across all requests in flight (16 MiB)."""

FD_RESERVE = 128
"""File descriptors left free under the open-files limit for the bot's own files and calls."""

_log = get_logger("imbot.bot.server")


def check_limits(
    *,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
    max_connections: int | None = None,
    max_body_size: int | None = None,
    max_buffered_bytes: int | None = None,
) -> None:
    """Check the server limits given; the ones left ``None`` are not checked.

    Raises:
        SetupError: a timeout is not positive, ``max_connections`` is below 1, or
            ``max_buffered_bytes`` could not hold one body of ``max_body_size``.
    """
    for name, value in (("header_timeout", header_timeout), ("body_timeout", body_timeout)):
        if value is not None and not value > 0:
            raise SetupError(f"{name} must be a positive number of seconds, got {value!r}")
    if max_connections is not None and max_connections < 1:
        raise SetupError(f"max_connections must be at least 1, got {max_connections}")
    if max_body_size is not None and max_body_size < 1:
        raise SetupError(f"max_body_size must be at least 1 byte, got {max_body_size}")
    if max_buffered_bytes is not None and max_buffered_bytes < (max_body_size or 1):
        raise SetupError(
            f"max_buffered_bytes ({max_buffered_bytes}) must be at least max_body_size "
            f"({max_body_size}): otherwise a body of the largest size could never be read"
        )


def open_files_limit() -> int | None:
    """This process's soft limit on open files, or ``None`` when there is none to read."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(max_connections: int, files: int | None) -> int:
    """``max_connections``, lowered so that ``FD_RESERVE`` descriptors stay free under ``files``.

    Example:
        >>> connection_cap(1024, 1024)
        896
    """
    if files is None:
        return max_connections
    room = files - FD_RESERVE if files > 2 * FD_RESERVE else files // 2
    return max(1, min(max_connections, room))


class ByteBudget:
    """Bytes buffered across all requests in flight, up to ``limit``."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes; ``False`` (and nothing counted) when they do not fit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        """Give back ``size`` bytes taken before."""
        self.used -= size


async def read_capped(stream: StreamReader, limit: int, budget: ByteBudget) -> bytes | int:
    """Read a request's whole body, or return the status refusing it as soon as one applies.

    413 once it passes ``limit`` bytes, 503 once the bodies being read would pass the
    budget. A body returned keeps its bytes taken from ``budget`` (the caller gives them
    back when the request is done); a refusal gives them back here.

    Args:
        stream: the request's body (aiohttp's ``request.content``).
        limit: the most bytes one body may have.
        budget: the bytes all bodies being read may hold together.
    """
    parts: list[bytes] = []
    held = 0
    read = False
    try:
        while True:
            chunk = await stream.readany()
            if not chunk:
                break
            # Chunked (or compressed) bodies have no trustworthy length: count while reading.
            if held + len(chunk) > limit:
                return 413
            if not budget.take(len(chunk)):
                return 503
            held += len(chunk)
            parts.append(chunk)
            if stream.is_eof():  # the common case: a small body arrives in one piece
                break
        read = True
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        if not read:
            budget.give(held)


class LogThrottle:
    """At most one warning per event name per ``interval``; the ones held back are counted.

    The first line of a kind is logged at once with ``count=1``; the rest within the
    interval are summed into one line logged when it ends, so a storm of refused
    connections costs a line every ``interval`` seconds, and still says how many.
    Call it from the event loop.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._quiet_until: dict[str, float] = {}
        self._held: dict[str, tuple[int, dict[str, Any]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def warning(self, event: str, count: int = 1, **fields: Any) -> None:
        """Log ``event`` now, or count it into the line logged when its quiet interval ends."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if event not in self._held and now >= self._quiet_until.get(event, float("-inf")):
            self._emit(event, count, fields, now)
            return
        held, _ = self._held.get(event, (0, fields))
        self._held[event] = (held + count, fields)
        if event not in self._timers:
            self._timers[event] = loop.call_at(self._quiet_until[event], self._release, event)

    def close(self) -> None:
        """Log what is still held back, now."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for event in list(self._held):
            self._release(event)

    def _release(self, event: str) -> None:
        self._timers.pop(event, None)
        held = self._held.pop(event, None)
        if held is not None:
            self._emit(event, held[0], held[1], asyncio.get_running_loop().time())

    def _emit(self, event: str, count: int, fields: dict[str, Any], now: float) -> None:
        self._quiet_until[event] = now + self._interval
        _log.warning(event, count=count, **fields)
