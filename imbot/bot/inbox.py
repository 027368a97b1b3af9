"""The inbox: drop events seen before, and keep accepted events until they are handled.

Inkbox may deliver one event more than once (retries, replays). A redelivery normally keeps
its envelope id (``evt_…``), but an official client does not count on that, and neither does
imbot: an event is known by what it is about. ``event_key`` names it
``<event type>:<message or tapback id>`` (``imessage.received:5b0c…``), the type included
because ``imessage.sent``, ``delivered`` and ``delivery_failed`` share the outbound message's
id; an event without a message or tapback falls back to its envelope id. The store
deduplicates on that key, durably; the inbox also remembers the envelope ids of the events
it admitted in this process, so the same envelope is dropped even if it named another
message. A durable store keeps each accepted body until the bot marks it complete, so
events acknowledged before a crash are handled after the restart.

The key an event was accepted under is the one its completion, retries and dead letter use,
even when ``event_key`` would now say otherwise: a pending event stored by an older imbot
under its envelope id still completes after an upgrade (``Runtime`` carries the stored key).

This module holds the semantics; the ``InboxStore`` protocol is in ``imbot.storage.base`` and
the engines beside it (``memory`` and ``sqlite``).

| URL | engine | after a crash |
|---|---|---|
| ``None``, ``"memory://"`` | in-process | accepted-but-unhandled events are lost (at most once) |
| ``"sqlite:///path/bot.db"`` | SQLite file, WAL | ``pending()`` returns them (at least once) |
| ``"redis://host:6379/0"`` | Redis, shared | another process takes them over (at least once) |

A ``shared`` inbox (Redis) is one for every process of the bot: the runtime then runs its
lanes through ``imbot.bot.cluster``, leased in the store, instead of the local path below.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from imbot.events import MessageEvent, ReactionReceived
from imbot.storage.base import DeadLetter, InboxStore, PendingEvent
from imbot.storage.urls import open_inbox_store

if TYPE_CHECKING:
    from imbot.events import AnyEvent

__all__ = ["DeadLetter", "Inbox", "InboxStore", "PendingEvent", "event_key", "open_inbox"]

RECENT_ENVELOPES = 10_000
"""How many envelope ids an inbox remembers in-process, besides the keys its store keeps."""


def event_key(event: AnyEvent) -> str:
    """The key an event is deduplicated and kept under; its sends' idempotency keys build on it.

    Example:
        >>> event_key(message_event("hi", message_id="5b0c1e7a"))
        'imessage.received:5b0c1e7a'
        >>> event_key(unknown_event(event_id="evt_9"))
        'evt_9'

    Returns:
        ``<event type>:<message id>`` for a message event, ``<event type>:<reaction id>``
        for a tapback, the envelope id for anything else.
    """
    if isinstance(event, MessageEvent):
        return f"{event.event_type}:{event.data.message.id}"
    if isinstance(event, ReactionReceived):
        return f"imessage.reaction_received:{event.data.reaction.id}"
    return event.id


class Inbox:
    """Deduplicates webhook events and tracks the ones still to be handled.

    Example:
        >>> inbox = open_inbox("sqlite:///bot.db")
        >>> key = await inbox.admit(event, raw)
        >>> if key is not None:
        ...     dispatcher.submit(event.conversation_id, event)
        >>> # ... after the handler ran:
        >>> await inbox.complete(key)

    Attributes:
        store: the engine underneath.
        durable: ``True`` when accepted events survive a crash of the process.
        shared: ``True`` when other processes use the same store (Redis): lanes are then
            leased in it (``imbot.bot.cluster``).
    """

    __slots__ = ("_order", "_recent", "durable", "shared", "store")

    def __init__(self, store: InboxStore, *, durable: bool | None = None) -> None:
        """Wrap an engine.

        Args:
            store: the engine.
            durable: override the engine's own ``durable`` attribute.
        """
        self.store = store
        self.durable: bool = bool(getattr(store, "durable", False)) if durable is None else durable
        self.shared: bool = bool(getattr(store, "shared", False))
        # Envelope ids (and the keys of events resumed under an older key) seen in this
        # process: a set for the lookup, a deque to forget the oldest.
        self._recent: set[str] = set()
        self._order: deque[str] = deque()

    async def admit(self, event: AnyEvent, raw: bytes) -> str | None:
        """Record an incoming event unless it, or its envelope, was seen before.

        Args:
            event: the parsed event.
            raw: the webhook body, kept until ``complete`` so it can be replayed.

        Returns:
            The key the event is kept under (``event_key``): pass it to ``complete`` once
            handled. ``None`` for a duplicate (drop it).
        """
        key = event_key(event)
        envelope = event.id
        recent = self._recent
        if envelope in recent or key in recent:
            return None
        if not await self.store.add(key, raw):
            return None
        if key != envelope:  # inline remember(): this is the webhook's hot path
            recent.add(envelope)
            order = self._order
            order.append(envelope)
            if len(order) > RECENT_ENVELOPES:
                recent.discard(order.popleft())
        return key

    def recalls(self, key: str) -> bool:
        """Whether ``key`` (an envelope id or an event key) was admitted or remembered here."""
        return key in self._recent

    def remember(self, key: str) -> None:
        """Treat ``key`` (an envelope id or an event key) as seen, for this process's life.

        The bot calls it for the events it resumes after a restart, so a redelivery of one
        is dropped even when the store knows that event under another key.
        """
        recent = self._recent
        if key in recent:
            return
        recent.add(key)
        order = self._order
        order.append(key)
        if len(order) > RECENT_ENVELOPES:
            recent.discard(order.popleft())

    async def accept(self, event_id: str, raw: bytes) -> bool:
        """Record an incoming event under a key of the caller's choosing, unless seen before.

        ``admit`` is the bot's way in; this is the store's own dedupe, by key alone.

        Args:
            event_id: the key (``event_key(event)``, or an envelope id).
            raw: the webhook body, kept until ``complete`` so it can be replayed.

        Returns:
            ``True`` for a new event (handle it), ``False`` for a duplicate (drop it).
        """
        return await self.store.add(event_id, raw)

    async def complete(self, event_id: str) -> None:
        """Mark an event handled, so it is not replayed after a restart.

        Args:
            event_id: the key it was accepted under.
        """
        await self.store.complete(event_id)

    async def pending(self) -> list[PendingEvent]:
        """Return the events accepted but not completed, oldest first.

        After a restart these are the events to hand to the dispatcher again. They are
        already in the dedupe window, so submit them directly rather than through
        ``admit`` (which would answer ``None``). ``PendingEvent.event_id`` is the key each
        was accepted under: complete it under that key.
        """
        return await self.store.pending()

    async def started(self, event_id: str) -> int:
        """Count a start of a resumed event's handling; return how many in a row."""
        return await self.store.started(event_id)

    async def failed(self, event_id: str, error: str) -> float:
        """Record a transient failure; return when the event first failed (Unix seconds)."""
        return await self.store.failed(event_id, error)

    async def dead_letter(self, event_id: str, *, reason: str, error: str, attempts: int) -> None:
        """Give up on a pending event: keep it as a dead letter."""
        await self.store.dead_letter(event_id, reason=reason, error=error, attempts=attempts)

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the dead letters, oldest first."""
        return await self.store.dead_letters()

    async def requeue(self, event_id: str) -> PendingEvent | None:
        """Make a dead letter pending again; ``None`` when there is no such dead letter."""
        return await self.store.requeue(event_id)

    async def close(self) -> None:
        """Close the engine."""
        await self.store.close()


def open_inbox(url: str | None = None) -> Inbox:
    """Open the inbox a storage URL names.

    Example:
        >>> open_inbox(None).durable
        False
        >>> open_inbox("sqlite:///bot.db").durable
        True

    Args:
        url: ``None`` or ``"memory://"`` for the in-process engine (a dedupe window of the
            last 100 000 ids, nothing kept across a restart); ``"sqlite:///path/to.db"`` for
            the durable SQLite engine (ids kept 7 days after acceptance, at most 1 000 000);
            add ``?synchronous=full`` to survive power loss too, at the price of an fsync per
            commit.

    Raises:
        ConfigError: the URL's scheme is not supported or the URL is malformed.
    """

    return Inbox(open_inbox_store(url))
