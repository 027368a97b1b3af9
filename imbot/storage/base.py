"""The storage protocols: what an inbox engine and a state engine provide.

The engines (``memory``, ``sqlite``) implement these; ``imbot.bot.inbox`` and
``imbot.bot.state`` hold the semantics on top. Protocols sit below both, so neither side
imports the other (the direction aiogram's ``fsm/storage/base.py`` takes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["InboxStore", "InstantStateStore", "PendingEvent", "StateStore"]


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event that was accepted but not yet marked complete.

    Attributes:
        event_id: the envelope id (``evt_…``).
        raw: the webhook body exactly as received; parse it with ``imbot.events.parse_event``.
    """

    event_id: str
    raw: bytes


@runtime_checkable
class InboxStore(Protocol):
    """What an inbox engine provides: a dedupe window plus the bodies of unhandled events.

    An engine may also set a ``durable`` attribute to ``True`` when ``add`` returns only
    after the event is safely written; ``Inbox`` reads it with a default of ``False``.
    """

    async def add(self, event_id: str, raw: bytes) -> bool:
        """Record an accepted event.

        Returns:
            ``True`` when the id is new, ``False`` when it was seen before. A durable engine
            returns only once the event is committed.
        """
        ...

    async def complete(self, event_id: str) -> None:
        """Mark an event handled: drop its body, keep its id for dedupe."""
        ...

    async def pending(self) -> list[PendingEvent]:
        """Return the accepted events not yet completed, oldest first."""
        ...

    async def close(self) -> None:
        """Release the engine's resources."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """What a state engine provides: one JSON object per conversation.

    Engines must keep nothing for a conversation whose state is empty: ``ConversationState``
    calls ``delete`` rather than saving ``{}``.
    """

    async def load(self, conversation_id: str) -> dict[str, Any] | None:
        """Return the saved state, or ``None`` when there is none."""
        ...

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        """Replace the saved state; ``data`` holds JSON-serializable values only."""
        ...

    async def delete(self, conversation_id: str) -> None:
        """Forget the conversation's state (no error when there is none)."""
        ...

    async def close(self) -> None:
        """Release the engine's resources."""
        ...


@runtime_checkable
class InstantStateStore(StateStore, Protocol):
    """A ``StateStore`` that can also read without awaiting (both built-in engines can).

    ``ctx.state`` is a plain property, so the bot can load a conversation's state at the
    moment a handler first touches it only through ``load_nowait``. With a store that lacks
    it (one that reads over the network), the state is loaded before the first handler is
    tried instead.
    """

    def load_nowait(self, conversation_id: str) -> dict[str, Any] | None:
        """Return the saved state, or ``None``, without blocking the event loop."""
        ...
