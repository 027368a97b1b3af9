"""Lanes on Redis: which process runs each conversation, and the conversation's queue.

A process that accepts an event appends it to its conversation's queue and, in the same
script, tries to take the conversation's lease (a key holding the process's token, expiring
after the lease). The holder runs the conversation's events one at a time: after each one
a script completes it and hands out the next queued event (accepted by any process), or
drops the lease when the queue is empty. Appending and dropping are both single scripts,
so an event appended while the holder finishes is never stranded: either the holder's
script sees it, or the append finds no lease and takes it.

``RedisLanes`` is the storage side of that: bytes in, bytes out, one round trip per call.
``imbot.bot.cluster`` gives it meaning (parsing, handling, the loops that renew leases and
take over the conversations of a process that died).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imbot.storage import redis_scripts as lua

if TYPE_CHECKING:
    from imbot.storage.redis_inbox import RedisInboxStore

__all__ = ["ANSWERED", "DUPLICATE", "LOST", "QUEUED", "RELEASED", "Handout", "RedisLanes"]

DUPLICATE = 0
"""``admit``: the event was accepted before (by any process)."""
QUEUED = 2
"""``admit``: queued behind the conversation's lane, which some process runs."""
ANSWERED = 3
"""``admit``: it answered an open ``ctx.ask``; it went to the asking process."""
RELEASED = 2
"""``advance``: nothing left to run (or asked to stop): the lease is dropped."""
LOST = -1
"""``advance``: the lease belongs to another process now."""

_ASK_TTL_MS = 86_400_000
_HANDOUT, _CONFLICT = 1, 4


@dataclass(frozen=True, slots=True)
class Handout:
    """An event handed to this process's lane for a conversation.

    Attributes:
        conversation_id: the lane's conversation (the event id for events without one).
        key: the key the event was accepted under.
        raw: its body; ``None`` when it is the event the caller just sent.
        resumed: another lane had it before and never finished (a crash, a lost lease).
        state: the conversation's stored state (JSON), or ``None``; read in the same script.
        version: the stored state's version, or ``None``.
        conflict: the lane's last event saved over a state that had moved on: nothing was
            completed, and this is that event again (or what is now first in the queue).
    """

    conversation_id: str
    key: str
    raw: bytes | None
    resumed: bool
    state: Any = None
    version: Any = None
    conflict: bool = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _handout(conversation_id: str, reply: list[Any]) -> Handout:
    key, raw, was, state, version = reply[1:6]
    return Handout(
        conversation_id,
        _text(key),
        None if raw is None else bytes(raw),
        bool(was),
        state,
        version,
        reply[0] == _CONFLICT,
    )


class RedisLanes:
    """The lane operations of one process, on a ``RedisInboxStore``'s client.

    Attributes:
        token: this process's lease token (random; a restarted process gets a new one).
        lease_ms: the lease, in milliseconds.
        want_state: whether handouts also read the conversation's state (the bot's state
            store is the Redis one on the same server and prefix).
    """

    def __init__(self, store: RedisInboxStore, *, want_state: bool = False) -> None:
        """Prepare the scripts on the store's client (loaded on first use)."""
        self.store = store
        self.token = uuid.uuid4().hex
        self.lease_ms = store.target.lease_ms
        self.want_state = want_state
        self._prefix = store.prefix
        self._guard = store.guard
        self._run = store.scripts.run
        self._answers = self._prefix + "ans:" + self.token
        self._wakes = self._prefix + "wake:" + self.token

    async def admit(
        self, key: str, raw: bytes, conversation_id: str, sender: str, *, force: bool = False
    ) -> int | Handout:
        """Accept a webhook's event: one script, one round trip.

        Args:
            key: the key it is kept under (``imbot.bot.inbox.event_key``).
            raw: the webhook body.
            conversation_id: its lane (the event id for an event without a conversation).
            sender: who may be answering a ``ctx.ask`` with it; ``""`` when it cannot.
            force: queue it although it was accepted already (an answer that came too late
                for its question becomes a plain message).

        Returns:
            ``DUPLICATE``, ``QUEUED``, ``ANSWERED``, or a ``Handout`` when this process now
            holds the conversation's lane (its first event may be an older one).

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        args: list[Any] = [
            self._prefix,
            key,
            raw,
            conversation_id,
            self.token,
            self.lease_ms,
            self.store.retention,
            sender,
            "1" if self.want_state else "0",
            "1" if force else "0",
        ]
        reply = await self._run(lua.ADMIT, args)
        status = int(reply[0])
        return _handout(conversation_id, reply) if status == _HANDOUT else status

    async def advance(
        self,
        conversation_id: str,
        done: Sequence[str],
        *,
        release: bool,
        state: tuple[str, int] | None = None,
    ) -> int | Handout:
        """Complete the lane's finished events (with their state change) and hand out the next.

        Args:
            conversation_id: the lane.
            done: the keys to complete (the event that ran; events a turn took behind it).
            release: drop the lease instead of handing out more (shutting down).
            state: the conversation's new state (JSON, ``""`` to delete) and the version it
                was loaded at; saved only if still at that version, atomically with the
                completions (otherwise the handout is marked ``conflict``).

        Returns:
            A ``Handout``, ``RELEASED`` (the lane is over) or ``LOST``.

        Raises:
            StoreUnavailable: Redis cannot be reached (nothing changed: call again).
        """
        encoded, base = state if state is not None else ("", None)
        args: list[Any] = [
            self._prefix,
            conversation_id,
            self.token,
            self.lease_ms,
            "1" if release else "0",
            "1" if self.want_state else "0",
            "" if base is None else base,
            encoded,
            *done,
        ]
        reply = await self._run(lua.ADVANCE, args)
        status = int(reply[0])
        return _handout(conversation_id, reply) if status in (_HANDOUT, _CONFLICT) else status

    async def peek(self, conversation_id: str, start: int, stop: int) -> list[tuple[str, bytes]]:
        """The ``(key, raw)`` of the events queued at positions ``start..stop`` (0: running)."""
        flat = await self._run(lua.PEEK, [self._prefix, conversation_id, start, stop])
        return [(_text(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def watch(self, conversation_id: str, ttl: float) -> int:
        """Count the conversation's queue, and have events queued elsewhere noticed.

        For ``ttl`` seconds, or until the first such event, another process queueing an
        event for the conversation pushes it to this process's ``next_wake``.

        Returns:
            How many events the queue holds (the running one included).
        """
        args = [self._prefix, conversation_id, self.token, max(1, int(ttl * 1000))]
        return int(await self._run(lua.WATCH, args))

    async def next_wake(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds for a watched conversation's notice; its id."""
        notice = await self._pop(self._wakes, timeout)
        return None if notice is None else notice.decode()

    async def renew(self, conversation_ids: list[str]) -> tuple[list[str], list[str]]:
        """Extend this process's leases, taking back lapsed ones nobody else took.

        Returns:
            The conversations another process holds now, and those taken back.
        """
        if not conversation_ids:
            return [], []
        lost, retaken = await self._run(
            lua.RENEW, [self._prefix, self.token, self.lease_ms, *conversation_ids]
        )
        return [_text(c) for c in lost], [_text(c) for c in retaken]

    async def take_over(self, limit: int) -> list[Handout]:
        """Take up to ``limit`` conversations with queued events and no lane."""
        args: list[Any] = [
            self._prefix,
            self.token,
            self.lease_ms,
            limit,
            "1" if self.want_state else "0",
        ]
        found = await self._run(lua.TAKEOVER, args)
        return [
            _handout(row[0].decode() if isinstance(row[0], bytes) else str(row[0]), row)
            for row in found
        ]

    async def release(self, conversation_ids: list[str]) -> None:
        """Drop this process's leases; their queued events are free to take at once."""
        if conversation_ids:
            await self._run(lua.RELEASE, [self._prefix, self.token, *conversation_ids])

    async def ask_open(self, conversation_id: str, sender: str, waiter: str) -> None:
        """Register a ``ctx.ask``: the next message of ``sender`` there goes to ``waiter``.

        The question holds only while this process holds the conversation's lease (the
        asker's lane), so one left behind by a process that died answers nothing; the key
        itself expires after a day.
        """
        await self.store.scripts.call(*self._ask_command(conversation_id, sender, waiter))

    def ask_open_nowait(
        self, conversation_id: str, sender: str, waiter: str
    ) -> asyncio.Future[Any] | None:
        """``ask_open`` queued at once, before whatever the caller sends next; ``None``
        when that is not possible (then await ``ask_open``)."""
        return self.store.scripts.call_nowait(*self._ask_command(conversation_id, sender, waiter))

    def _ask_command(self, conversation_id: str, sender: str, waiter: str) -> tuple[Any, ...]:
        key = f"{self._prefix}ask:{conversation_id}:{sender}"
        return ("SET", key, f"{self.token}|{waiter}", "PX", _ASK_TTL_MS)

    async def ask_close(self, conversation_id: str, sender: str, waiter: str) -> bool:
        """Stop waiting; ``False`` when the question was answered meanwhile."""
        value = f"{self.token}|{waiter}"
        closed = await self._run(lua.ASK_CLOSE, [self._prefix, conversation_id, sender, value])
        return bool(closed)

    async def next_answer(self, timeout: float) -> tuple[str, bytes] | None:
        """Wait up to ``timeout`` seconds for an answer to one of this process's asks.

        Returns:
            ``(waiter, raw)``, or ``None`` when none came.
        """
        data = await self._pop(self._answers, timeout)
        if data is None:
            return None
        waiter, _, raw = data.partition(b"\n")
        return waiter.decode(), raw

    async def _pop(self, name: str, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` seconds for the first item of one of this process's lists."""
        with self._guard:
            item = await self.store.client.blpop([name], timeout=timeout)
        if item is None:
            return None
        value = item[1]
        return value.encode() if isinstance(value, str) else bytes(value)

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless Redis answers."""
        with self._guard:
            await self.store.client.ping()
