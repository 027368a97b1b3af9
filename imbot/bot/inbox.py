"""The inbox: drop events seen before, and keep accepted events until they are handled.

Inkbox may deliver one event more than once (retries, replays), always under the same
envelope id (``evt_…``). The inbox remembers the ids it has accepted within a bounded window
and answers ``False`` for a repeat. A durable store also keeps each accepted body until the
bot marks it complete, so events acknowledged before a crash are handled after the restart.

This module holds the semantics; the ``InboxStore`` protocol is in ``imbot.storage.base`` and
the engines beside it (``memory`` and ``sqlite``).

| URL | engine | after a crash |
|---|---|---|
| ``None``, ``"memory://"`` | in-process | accepted-but-unhandled events are lost (at most once) |
| ``"sqlite:///path/bot.db"`` | SQLite file, WAL | ``pending()`` returns them (at least once) |
"""

from __future__ import annotations

from imbot.storage.base import InboxStore, PendingEvent
from imbot.storage.urls import open_inbox_store

__all__ = ["Inbox", "InboxStore", "PendingEvent", "open_inbox"]


class Inbox:
    """Deduplicates webhook events and tracks the ones still to be handled.

    Example:
        >>> inbox = open_inbox("sqlite:///bot.db")
        >>> if await inbox.accept(event.id, raw):
        ...     dispatcher.submit(event.conversation_id, event)
        >>> # ... after the handler ran:
        >>> await inbox.complete(event.id)

    Attributes:
        store: the engine underneath.
        durable: ``True`` when accepted events survive a crash of the process.
    """

    __slots__ = ("durable", "store")

    def __init__(self, store: InboxStore, *, durable: bool | None = None) -> None:
        """Wrap an engine.

        Args:
            store: the engine.
            durable: override the engine's own ``durable`` attribute.
        """
        self.store = store
        self.durable: bool = bool(getattr(store, "durable", False)) if durable is None else durable

    async def accept(self, event_id: str, raw: bytes) -> bool:
        """Record an incoming event unless it was seen before.

        Args:
            event_id: the envelope id (``evt_…``), the same across redeliveries.
            raw: the webhook body, kept until ``complete`` so it can be replayed.

        Returns:
            ``True`` for a new event (handle it), ``False`` for a duplicate (drop it).
        """
        return await self.store.add(event_id, raw)

    async def complete(self, event_id: str) -> None:
        """Mark an event handled, so it is not replayed after a restart.

        Args:
            event_id: the envelope id given to ``accept``.
        """
        await self.store.complete(event_id)

    async def pending(self) -> list[PendingEvent]:
        """Return the events accepted but not completed, oldest first.

        After a restart these are the events to hand to the dispatcher again. They are
        already in the dedupe window, so submit them directly rather than through
        ``accept`` (which would answer ``False``).
        """
        return await self.store.pending()

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
