"""What a handler's context reads from its event: the message, text, sender, conversation.

``Context`` builds on this view and adds the helpers that act; the view alone never does IO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from imbot.errors import ImbotError
from imbot.events import AnyEvent, MessageEvent, ReactionReceived
from imbot.models import Message, Reaction

if TYPE_CHECKING:
    from imbot.routing.turns import Turn

__all__ = ["EventT_co", "EventView"]

EventT_co = TypeVar("EventT_co", bound=AnyEvent, covariant=True)


class EventView(Generic[EventT_co]):
    """The event of a context, read: ``ctx.event``, ``ctx.text``, ``ctx.sender``…

    Args:
        event: the event.

    Attributes:
        turn: in an ``on_turn`` handler, the turn's messages and tapbacks (``ctx.event``
            is its last message); ``None`` elsewhere.
    """

    __slots__ = ("_event", "turn")

    def __init__(self, event: EventT_co) -> None:
        self._event = event
        self.turn: Turn | None = None

    @property
    def event(self) -> EventT_co:
        """The webhook event being handled."""
        return self._event

    @property
    def message(self) -> Message | None:
        """The message of a message event (received, sent, delivered, failed), else ``None``."""
        event = self._event
        if isinstance(event, MessageEvent):
            return event.data.message
        return None

    @property
    def reaction(self) -> Reaction | None:
        """The tapback of a ``reaction_received`` event, else ``None``."""
        event = self._event
        if isinstance(event, ReactionReceived):
            return event.data.reaction
        return None

    @property
    def text(self) -> str:
        """The message text, or ``""`` (tapbacks, media-only messages); a turn's joined text."""
        if self.turn is not None:
            return self.turn.text
        event = self._event
        if isinstance(event, MessageEvent):
            return event.data.message.content or ""
        return ""

    @property
    def sender(self) -> str:
        """The human's number (E.164), or ``""`` when the event names none."""
        event = self._event
        if isinstance(event, MessageEvent):
            message = event.data.message
            return message.sender_number or message.remote_number or ""
        if isinstance(event, ReactionReceived):
            return event.data.reaction.remote_number
        return ""

    @property
    def conversation_id(self) -> str:
        """The conversation the event belongs to, or ``""`` when it names none."""
        return self._event.conversation_id or ""

    def require_conversation(self, helper: str) -> str:
        """The event's conversation, for a helper that needs one.

        Raises:
            ImbotError: the event names no conversation; the message names the helper.
        """
        conversation_id = self._event.conversation_id
        if not conversation_id:
            raise ImbotError(
                f"ctx.{helper}() needs a conversation, and this {self._event.event_type} "
                "event names none; use bot.send(..., conversation_id=...) instead"
            )
        return conversation_id

    def trigger_message_id(self) -> str:
        """The message the event is about: the one received, or the one tapped back.

        Raises:
            ImbotError: the event is about no message.
        """
        event = self._event
        if isinstance(event, MessageEvent):
            return event.data.message.id
        if isinstance(event, ReactionReceived):
            return event.data.reaction.target_message_id
        raise ImbotError(f"a {event.event_type} event has no message to reply to or react on")
