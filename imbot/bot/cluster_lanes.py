"""What a lane's handler sees of a shared lane: outcomes noted, the queue behind it read.

``LaneInbox`` is the inbox ``Handling`` uses when lanes are leased in Redis: completing an
event only notes it, and the lane completes it in the script that hands out the next event
(one round trip for both). ``QueueView`` is ``LaneAccess`` (``imbot.bot.dispatch``) over a
conversation's queue in Redis, for turns (``imbot.bot.turns``) that gather the messages
queued behind the running one. Taking an event writes nothing: it stays in the queue,
right behind the running one, until it is completed with it; should the process die, the
next holder runs the conversation from the running event again, and the turn forms anew.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from imbot.bot.inbox import Inbox, event_key
from imbot.bot.retry import Backoff
from imbot.errors import MalformedEvent, StoreUnavailable
from imbot.events import AnyEvent, parse_event
from imbot.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from imbot.bot.handling import Handling
    from imbot.storage.redis_inbox import RedisInboxStore
    from imbot.storage.redis_lanes import RedisLanes

__all__ = ["LaneInbox", "QueueView"]

_log = get_logger("imbot")

# A turn waiting on its queue is told by Redis when another process queues an event there
# (``RedisLanes.watch``); it still looks every _LOOK seconds, should a notice be lost (a
# Redis restart). The watch outlives a look, so there is no gap between two.
_LOOK = 1.0
_WATCH_TTL = 3 * _LOOK
_PARSED_KEPT = 4096  # queued events kept parsed; past it the cache starts over


class LaneInbox(Inbox):
    """The inbox ``Handling`` sees on a shared store: outcomes are noted for the lane.

    ``complete`` only notes the key: the lane's next ``advance`` script completes it in the
    same round trip that hands out the next event. A dead letter is written at once (and
    noted, so the lane moves on).

    Attributes:
        finished: keys whose handling reached an outcome, until their lane advances.
    """

    __slots__ = ("finished",)

    def __init__(self, store: RedisInboxStore) -> None:
        """Wrap the shared store."""
        super().__init__(store)
        self.finished: set[str] = set()

    async def complete(self, event_id: str) -> None:
        """Note the event done; the lane completes it in Redis as it moves on."""
        self.finished.add(event_id)

    async def dead_letter(self, event_id: str, *, reason: str, error: str, attempts: int) -> None:
        """Keep the event as a dead letter (shared by every process); the lane moves on."""
        await super().dead_letter(event_id, reason=reason, error=error, attempts=attempts)
        self.finished.add(event_id)


class QueueView:
    """``LaneAccess`` over the Redis queues of the lanes this process holds.

    Position 0 of a conversation's queue is the running event; the events a turn took sit
    right behind it, then the ones still queued.
    """

    __slots__ = ("_handling", "_lanes", "_parsed", "_taken", "_wakers", "_watched", "_watching")

    def __init__(self, lanes: RedisLanes) -> None:
        """Read queues through ``lanes``."""
        self._lanes = lanes
        self._handling: Handling | None = None
        self._taken: dict[str, list[str]] = {}
        self._parsed: dict[str, AnyEvent] = {}
        self._wakers: dict[str, anyio.Event] = {}
        self._watching = 0  # waits under way: notices are read only while there are some
        self._watched = anyio.Event()

    def attach(self, handling: Handling) -> None:
        """Adopt taken events whose key is not their ``event_key`` through ``handling``."""
        self._handling = handling

    def taken(self, conversation_id: str) -> list[str]:
        """Forget and return the keys taken behind the lane's running event."""
        keys = self._taken.pop(conversation_id, [])
        for key in keys:
            self._parsed.pop(key, None)
        return keys

    def queued_here(self, conversation_id: str, key: str, event: AnyEvent) -> None:
        """An event accepted here joined its conversation's queue: wake a ``wait``, and keep
        it parsed for the lane (bounded: another process's lane parses its own copy)."""
        self._wake(conversation_id)
        parsed = self._parsed
        if len(parsed) >= _PARSED_KEPT:
            parsed.clear()
        parsed[key] = event

    def parsed(self, key: str) -> AnyEvent | None:
        """Take the parsed copy of a queued event, if this process kept one."""
        return self._parsed.pop(key, None) if self._parsed else None

    async def peek(self, key: str, limit: int) -> list[AnyEvent]:
        """Up to ``limit`` events queued behind the running one and those taken."""
        if limit < 1:
            return []
        skip = 1 + len(self._taken.get(key, ()))
        rows = await self._lanes.peek(key, skip, skip + limit - 1)
        return [event for event in (self._event(k, raw) for k, raw in rows) if event]

    async def take(self, key: str) -> AnyEvent | None:
        """Take the next queued event for the running handler (it stays queued until done)."""
        skip = 1 + len(self._taken.get(key, ()))
        for stored, raw in await self._lanes.peek(key, skip, skip):
            event = self._event(stored, raw)
            self._taken.setdefault(key, []).append(stored)
            if event is None:
                continue  # unreadable: completed with the rest, never handled
            if stored != event_key(event) and self._handling is not None:
                self._handling.adopt(stored, event)
            return event
        return None

    async def wait(self, key: str, timeout: float | None, *, beyond: int = 0) -> bool:
        """Wait until more than ``beyond`` events are queued behind what was taken.

        Events accepted here wake it at once; those another process accepts, as soon as
        Redis's notice arrives (``listen``). While Redis is out of reach nothing new
        arrives: it keeps waiting.
        """
        deadline = None if timeout is None else anyio.current_time() + timeout
        self._watching += 1
        self._watched.set()
        try:
            while True:
                waker = self._wakers.get(key)
                if waker is None:
                    waker = self._wakers[key] = anyio.Event()
                try:
                    queued = await self._lanes.watch(key, _WATCH_TTL)
                except StoreUnavailable:
                    queued = 0  # nothing new can be accepted meanwhile either
                if queued - 1 - len(self._taken.get(key, ())) > beyond:
                    return True
                left = _LOOK if deadline is None else min(_LOOK, deadline - anyio.current_time())
                if left <= 0:
                    return False
                with anyio.move_on_after(left):
                    await waker.wait()
        finally:
            self._watching -= 1

    async def listen(self, outage: Callable[[StoreUnavailable], None]) -> None:
        """Read Redis's notices for the queues waited on here, until cancelled.

        Args:
            outage: told when Redis cannot be reached (the loop retries with backoff).
        """
        backoff = Backoff()
        while True:
            while not self._watching:
                self._watched = anyio.Event()
                await self._watched.wait()
            try:
                conversation_id = await self._lanes.next_wake(_LOOK)
            except StoreUnavailable as exc:
                outage(exc)
                await backoff.pause()
                continue
            backoff.reset()
            if conversation_id is not None:
                self._wake(conversation_id)

    def _wake(self, conversation_id: str) -> None:
        waker = self._wakers.pop(conversation_id, None)
        if waker is not None:
            waker.set()

    def _event(self, key: str, raw: bytes) -> AnyEvent | None:
        event = self._parsed.get(key)
        if event is None:
            try:
                event = self._parsed[key] = parse_event(raw)
            except MalformedEvent as exc:
                _log.error("skipping an unreadable queued event", event_id=key, error=str(exc))
                return None
        return event
