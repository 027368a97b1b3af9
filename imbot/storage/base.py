"""The storage protocols: what an inbox engine and a state engine provide.

The engines (``memory``, ``sqlite``, ``redis_*``) implement these, and store a state as
``encode_state`` writes it; ``imbot.bot.inbox`` and ``imbot.bot.state`` hold the semantics on
top. Protocols sit below both, so neither side imports the other (the direction aiogram's
``fsm/storage/base.py`` takes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DeadLetter",
    "InboxStore",
    "InstantStateStore",
    "PendingEvent",
    "StateStore",
    "VersionedStateStore",
    "encode_state",
]


def encode_state(conversation_id: str, data: dict[str, Any]) -> str:
    """A conversation's state as compact JSON, the form every engine stores.

    Raises:
        TypeError: a value is not JSON-serializable (the message names the conversation).
    """
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"state of conversation {conversation_id} is not JSON-serializable: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event that was accepted but not yet marked complete.

    Attributes:
        event_id: the key it was accepted under (``imbot.bot.inbox.event_key``: the message
            or tapback it is about; the envelope id ``evt_…`` for other events, and for
            events an older imbot accepted).
        raw: the webhook body exactly as received; parse it with ``imbot.events.parse_event``.
        starts: times its handling started after a restart without reaching an outcome (a
            crash loop shows here; see ``InboxStore.started``).
        first_failed_at: when its handler first failed on a transient API error (Unix
            seconds), or ``None``; the retry deadline counts from here.
    """

    event_id: str
    raw: bytes
    starts: int = 0
    first_failed_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event given up on: kept, listed and replayable, never handled again by itself.

    Attributes:
        event_id: the key it was accepted under (see ``PendingEvent``).
        raw: the webhook body as received.
        reason: ``"deadline"`` (transient failures past the retry deadline) or ``"poison"``
            (its handling crashed the process again and again).
        error: the last error, as text.
        attempts: how many times its handling was tried.
        first_failed_at: when it first failed (Unix seconds), if it failed in-process.
        dead_at: when it became a dead letter (Unix seconds).
    """

    event_id: str
    raw: bytes
    reason: str
    error: str
    attempts: int
    first_failed_at: float | None
    dead_at: float


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

    async def started(self, event_id: str) -> int:
        """Count one more start of a pending event's handling; return the count.

        The bot calls it for events it resumes after a restart, before their handler runs,
        so an event whose handling kills the process is seen for what it is. A transient
        failure (``failed``) resets the count.
        """
        ...

    async def failed(self, event_id: str, error: str) -> float:
        """Record that the event's handler failed on a transient error; it stays pending.

        Returns:
            When it first failed (Unix seconds): the retry deadline counts from there.
        """
        ...

    async def dead_letter(self, event_id: str, *, reason: str, error: str, attempts: int) -> None:
        """Move a pending event to the dead letters (its id stays in the dedupe window)."""
        ...

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the dead letters, oldest first."""
        ...

    async def requeue(self, event_id: str) -> PendingEvent | None:
        """Move a dead letter back to the pending events, its counts reset.

        Returns:
            The event, now pending; ``None`` when no dead letter has that id.
        """
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


@runtime_checkable
class VersionedStateStore(StateStore, Protocol):
    """A ``StateStore`` that saves only over the version it loaded: no lost update.

    Where several processes may run one conversation (a shared store), a save carries the
    version its state was loaded at, and fails with ``imbot.errors.StateConflict`` (a
    transient error: the event runs again) when the stored state moved on meanwhile.
    Version 0 means "nothing saved".
    """

    async def load_versioned(self, conversation_id: str) -> tuple[dict[str, Any] | None, int]:
        """Return the saved state (or ``None``) and its version."""
        ...

    async def save_versioned(self, conversation_id: str, data: dict[str, Any], version: int) -> int:
        """Replace the state saved at ``version`` (an empty ``data`` deletes it).

        Returns:
            The new version.

        Raises:
            StateConflict: the stored state is no longer at ``version``.
        """
        ...
