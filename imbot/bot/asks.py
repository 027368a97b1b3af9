"""Open ``ctx.ask`` questions: a message that answers one goes to the asking handler only.

``Bot.feed`` offers each new inbound message here *before* queueing it: the asking handler
holds its conversation's lane, so the answer must not wait in that lane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from imbot.errors import ImbotError

if TYPE_CHECKING:
    from imbot.events import MessageReceived
    from imbot.models import Message

__all__ = ["AskRegistry", "Waiter"]


class Waiter:
    """One open question: set once the answer arrives.

    Attributes:
        answered: set when the answer arrives.
        message: the answer, once it arrived.
    """

    __slots__ = ("answered", "message")

    def __init__(self) -> None:
        self.answered = anyio.Event()
        self.message: Message | None = None


class AskRegistry:
    """Open ``ctx.ask`` questions, by conversation and sender."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Waiter] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def open(self, conversation_id: str, sender: str) -> Waiter:
        """Start waiting for the next message of ``sender`` in ``conversation_id``.

        Raises:
            ImbotError: a question is already open there.
        """
        key = (conversation_id, sender)
        if key in self._open:
            raise ImbotError(
                f"ctx.ask is already waiting for {sender} in conversation {conversation_id}"
            )
        waiter = Waiter()
        self._open[key] = waiter
        return waiter

    def close(self, conversation_id: str, sender: str, waiter: Waiter) -> None:
        """Stop waiting (answered, timed out or cancelled)."""
        key = (conversation_id, sender)
        if self._open.get(key) is waiter:
            del self._open[key]

    def offer(self, event: MessageReceived) -> bool:
        """Hand an inbound message to the question waiting for it, if there is one.

        Returns:
            ``True`` when it answered a question (route it nowhere else).
        """
        message = event.data.message
        if message.direction == "outbound":
            return False
        sender = message.sender_number or message.remote_number or ""
        waiter = self._open.pop((message.conversation_id, sender), None)
        if waiter is None:
            return False
        waiter.message = message
        waiter.answered.set()
        return True
