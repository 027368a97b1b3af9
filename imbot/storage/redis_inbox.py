"""The Redis inbox: one dedupe window and one set of pending events for every process.

``RedisInboxStore`` keeps the ``InboxStore`` contract of the memory and SQLite engines (ids
kept 7 days for dedupe, pending bodies oldest first, retry counts, dead letters, requeue);
each change is one Lua script (``redis_scripts``), so two processes never see half of one.
It is ``shared``: the bot then runs its lanes through ``imbot.bot.cluster``, which uses the
lane operations of ``imbot.storage.redis_lanes`` on the same client. Durability is the
server's: with ``appendonly yes`` and ``appendfsync everysec`` an accepted event survives a
Redis restart, and at worst the last second is lost when the machine itself fails.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from imbot.storage import redis_scripts as lua
from imbot.storage.base import DeadLetter, PendingEvent
from imbot.storage.redis_conn import RedisTarget, connect, unavailable
from imbot.storage.redis_wire import Scripts

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["DEFAULT_RETENTION", "RedisInboxStore"]

DEFAULT_RETENTION = 7 * 24 * 3600
"""Seconds an accepted event id is kept for dedupe, as in SQLite."""

_CHUNK = 500  # keys read per pipeline when listing pending events or dead letters


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(_text(value))


class RedisInboxStore:
    """The inbox of a bot whose processes share one Redis server.

    Example:
        >>> store = RedisInboxStore(RedisTarget("redis://127.0.0.1:6379/0"))
        >>> await store.add("imessage.received:5b0c", body)
        True

    Attributes:
        durable: ``True``: an accepted event is in Redis before ``add`` returns.
        shared: ``True``: other processes see the same events, so lanes are leased.
        target: the server, prefix and lease.
        client: the redis-py client (the lanes and the state store may share it).
        prefix: the key prefix, ending in ``:``.
        retention: seconds an accepted id is kept for dedupe.
    """

    durable = True
    shared = True

    def __init__(
        self,
        target: RedisTarget,
        *,
        client: redis.asyncio.Redis | None = None,
        retention: int = DEFAULT_RETENTION,
    ) -> None:
        """Open (lazily: nothing connects before the first command).

        Args:
            target: the server, prefix and lease.
            client: a client to use instead of opening one (then not closed here).
            retention: seconds an accepted id is kept for dedupe.

        Raises:
            ConfigError: redis-py is not installed, or the URL is invalid.
        """
        self.target = target
        self._owns_client = client is None
        self.client: redis.asyncio.Redis = client if client is not None else connect(target)
        self.prefix = target.prefix + ":"
        self.retention = retention
        self.guard = unavailable(target)
        self.scripts = Scripts(target, self.client)

    async def add(self, event_id: str, raw: bytes) -> bool:
        """Record an event unless its id was accepted within the retention or is pending."""
        added = await self.scripts.run(lua.ADD, [self.prefix, event_id, raw, self.retention])
        return bool(added)

    async def complete(self, event_id: str) -> None:
        """Drop the event's body (and its place in its conversation's queue); keep its id."""
        await self.scripts.run(lua.COMPLETE, [self.prefix, event_id])

    async def pending(self) -> list[PendingEvent]:
        """Return the events accepted but not completed, oldest first."""
        with self.guard:
            keys = [_text(k) for k in await self.client.zrange(self.prefix + "pending", 0, -1)]
            rows = await self._hashes("ev:", keys, ("raw", "starts", "ff"))
        return [
            PendingEvent(key, bytes(raw), int(_text(starts or b"0")), _float(first))
            for key, (raw, starts, first) in zip(keys, rows, strict=True)
            if raw is not None
        ]

    async def started(self, event_id: str) -> int:
        """Count one more start of a pending event's handling; return the count."""
        return int(await self.scripts.run(lua.STARTED, [self.prefix, event_id]))

    async def failed(self, event_id: str, error: str) -> float:
        """Record a transient failure; return when the event first failed (Unix seconds)."""
        now = time.time()
        first = await self.scripts.run(lua.FAILED, [self.prefix, event_id, error, repr(now)])
        return now if first is None else float(_text(first))

    async def dead_letter(self, event_id: str, *, reason: str, error: str, attempts: int) -> None:
        """Move a pending event to the dead letters, shared by every process."""
        args = [self.prefix, event_id, reason, error, attempts, repr(time.time())]
        await self.scripts.run(lua.DEAD_LETTER, args)

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the dead letters, oldest first."""
        fields = ("raw", "reason", "error", "attempts", "ff", "at")
        with self.guard:
            keys = [_text(k) for k in await self.client.zrange(self.prefix + "dead", 0, -1)]
            rows = await self._hashes("dl:", keys, fields)
        return [
            DeadLetter(
                key,
                bytes(raw),
                _text(reason),
                _text(error),
                int(_text(attempts)),
                _float(first),
                float(_text(at)),
            )
            for key, (raw, reason, error, attempts, first, at) in zip(keys, rows, strict=True)
            if raw is not None
        ]

    async def requeue(self, event_id: str) -> PendingEvent | None:
        """Make a dead letter pending again, at the back of its conversation's queue."""
        raw = await self.scripts.run(lua.REQUEUE, [self.prefix, event_id, self.retention])
        return None if raw is None else PendingEvent(event_id, bytes(raw))

    async def count(self) -> int:
        """Return how many pending events the store holds (for tests and diagnostics)."""
        with self.guard:
            return int(await self.client.zcard(self.prefix + "pending"))

    async def close(self) -> None:
        """Close the connections (the client only if this store opened it)."""
        await self.scripts.close()
        if self._owns_client:
            await self.client.aclose()

    async def _hashes(self, kind: str, keys: list[str], fields: tuple[str, ...]) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for start in range(0, len(keys), _CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for key in keys[start : start + _CHUNK]:
                pipe.hmget(self.prefix + kind + key, list(fields))
            rows.extend(await pipe.execute())
        return rows
