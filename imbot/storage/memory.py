"""In-process engines: the default inbox and state store.

Nothing here survives a restart. The inbox therefore delivers at most once across a crash:
an event acknowledged with 200 but not yet handled when the process dies is lost. Both
engines are plain dict operations with no await inside, so they cost almost nothing on the
webhook's hot path.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from imbot.storage.base import DeadLetter, PendingEvent, encode_state

__all__ = ["MemoryInboxStore", "MemoryStateStore"]

DEFAULT_DEDUPE_WINDOW = 100_000
"""How many recent event ids the memory inbox remembers."""


class MemoryInboxStore:
    """A dedupe window of the most recently accepted ids, plus the unhandled bodies.

    The window is first-in first-out: once ``window`` newer ids were accepted, an id is
    forgotten and a redelivery of it would be accepted again. An id whose event is still
    pending is never forgotten.

    Attributes:
        durable: always ``False``.
    """

    durable = False

    __slots__ = ("_dead", "_failed_at", "_order", "_pending", "_seen", "_starts", "_window")

    def __init__(self, *, window: int = DEFAULT_DEDUPE_WINDOW) -> None:
        """Create an empty inbox.

        Args:
            window: how many accepted ids to remember for dedupe (at least 1).
        """
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._window = window
        # A set for O(1) lookups and a deque for O(1) eviction in arrival order.
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._pending: dict[str, bytes] = {}
        # Rare: only events resumed after a restart or failing transiently have entries.
        self._starts: dict[str, int] = {}
        self._failed_at: dict[str, float] = {}
        self._dead: dict[str, DeadLetter] = {}

    async def add(self, event_id: str, raw: bytes) -> bool:
        """Record an event; ``False`` when its id is in the window or still pending."""
        if event_id in self._seen or event_id in self._pending:
            return False
        self._seen.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._window:
            self._seen.discard(self._order.popleft())
        self._pending[event_id] = raw
        return True

    async def complete(self, event_id: str) -> None:
        """Drop the event's body; its id stays in the window."""
        self._pending.pop(event_id, None)
        if self._starts or self._failed_at:
            self._starts.pop(event_id, None)
            self._failed_at.pop(event_id, None)

    async def pending(self) -> list[PendingEvent]:
        """Return the unhandled events in the order they were accepted."""
        return [
            PendingEvent(
                event_id, raw, self._starts.get(event_id, 0), self._failed_at.get(event_id)
            )
            for event_id, raw in self._pending.items()
        ]

    async def started(self, event_id: str) -> int:
        """Count one more start of a pending event's handling; return the count."""
        count = self._starts.get(event_id, 0) + 1
        self._starts[event_id] = count
        return count

    async def failed(self, event_id: str, error: str) -> float:
        """Record a transient failure; return when the event first failed."""
        self._starts.pop(event_id, None)
        return self._failed_at.setdefault(event_id, time.time())

    async def dead_letter(self, event_id: str, *, reason: str, error: str, attempts: int) -> None:
        """Move a pending event to the dead letters."""
        raw = self._pending.pop(event_id, None)
        if raw is None:
            return
        self._starts.pop(event_id, None)
        first = self._failed_at.pop(event_id, None)
        self._dead[event_id] = DeadLetter(
            event_id, raw, reason, error, attempts, first, time.time()
        )

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the dead letters, oldest first."""
        return sorted(self._dead.values(), key=lambda letter: letter.dead_at)

    async def requeue(self, event_id: str) -> PendingEvent | None:
        """Move a dead letter back to the pending events."""
        letter = self._dead.pop(event_id, None)
        if letter is None:
            return None
        self._pending[event_id] = letter.raw
        return PendingEvent(event_id, letter.raw)

    async def close(self) -> None:
        """Forget everything."""
        self._seen.clear()
        self._order.clear()
        self._pending.clear()
        self._starts.clear()
        self._failed_at.clear()
        self._dead.clear()

    def __len__(self) -> int:
        return len(self._order)


class MemoryStateStore:
    """Conversation states kept as JSON strings in a dict.

    Keeping the encoded string (not the dict) means every ``load`` returns a fresh copy, so a
    handler's unsaved changes never leak into the stored state. An empty state is not kept.
    """

    __slots__ = ("_states",)

    def __init__(self) -> None:
        """Create an empty store."""
        self._states: dict[str, str] = {}

    async def load(self, conversation_id: str) -> dict[str, Any] | None:
        """Return a copy of the saved state, or ``None``."""
        return self.load_nowait(conversation_id)

    def load_nowait(self, conversation_id: str) -> dict[str, Any] | None:
        """Return a copy of the saved state, or ``None`` (a dict lookup: never blocks)."""
        encoded = self._states.get(conversation_id)
        if encoded is None:
            return None
        data: dict[str, Any] = json.loads(encoded)
        return data

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        """Replace the saved state; an empty ``data`` deletes it."""
        if not data:
            self._states.pop(conversation_id, None)
            return
        self._states[conversation_id] = encode_state(conversation_id, data)

    async def delete(self, conversation_id: str) -> None:
        """Forget the state."""
        self._states.pop(conversation_id, None)

    async def close(self) -> None:
        """Forget every state."""
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
