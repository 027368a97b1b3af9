"""Webhook event models: the envelope and the five ``imessage.*`` event types.

Every delivery is an envelope ``{"id": "evt_…", "event_type", "timestamp", "data"}``.
``data`` carries exactly one of ``message`` (received, sent, delivered, delivery_failed)
or ``reaction`` (reaction_received), plus the ``contacts`` and ``agent_identities`` lists
(``agentIdentities``, ``agentHandle`` and ``displayName`` are read too) and, on
``imessage.received`` for a subscription with a ``context_config``, ``context``.
Event types this version does not know parse as ``UnknownEvent`` rather than failing.

A tapback event is not always the human's: the agent's own tapbacks come back as
``imessage.reaction_received`` with ``direction: "outbound"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, TypeAdapter, ValidationError

from imbot.errors import MalformedEvent
from imbot.models import Message, Reaction, WireModel

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "DeliveryFailed",
    "Event",
    "EventContact",
    "EventIdentity",
    "MessageDelivered",
    "MessageEvent",
    "MessageEventData",
    "MessageReceived",
    "MessageSent",
    "ReactionEventData",
    "ReactionReceived",
    "UnknownEvent",
    "build_parsers",
    "parse_event",
]

EVENT_TYPES = (
    "imessage.received",
    "imessage.reaction_received",
    "imessage.sent",
    "imessage.delivered",
    "imessage.delivery_failed",
)
"""The five iMessage webhook event types, in the order a subscription usually lists them."""


class EventContact(WireModel):
    """An address-book match for the remote number."""

    id: str
    name: str | None = None
    memories: list[str] | None = None


class EventIdentity(WireModel):
    """An agent identity of the same organization that the remote party turned out to be."""

    id: str
    agent_handle: str | None = Field(
        default=None, validation_alias=AliasChoices("agent_handle", "agentHandle")
    )
    display_name: str | None = Field(
        default=None, validation_alias=AliasChoices("display_name", "displayName")
    )


_IDENTITIES_ALIAS = AliasChoices("agent_identities", "agentIdentities")


class MessageEventData(WireModel):
    """``data`` of a message event."""

    message: Message
    reaction: None = None
    contacts: list[EventContact] = Field(default_factory=list)
    agent_identities: list[EventIdentity] = Field(
        default_factory=list, validation_alias=_IDENTITIES_ALIAS
    )
    context: dict[str, Any] | None = None


class ReactionEventData(WireModel):
    """``data`` of ``imessage.reaction_received``."""

    message: None = None
    reaction: Reaction
    contacts: list[EventContact] = Field(default_factory=list)
    agent_identities: list[EventIdentity] = Field(
        default_factory=list, validation_alias=_IDENTITIES_ALIAS
    )
    context: dict[str, Any] | None = None


class _Envelope(WireModel):
    id: str
    timestamp: datetime
    companion: dict[str, Any] | None = None


class MessageEvent(_Envelope):
    """Shared shape of the four events that carry a message."""

    data: MessageEventData

    @property
    def message(self) -> Message:
        """The message the event is about."""
        return self.data.message

    @property
    def conversation_id(self) -> str:
        """The conversation the message belongs to."""
        return self.data.message.conversation_id

    @property
    def remote_number(self) -> str | None:
        """The human's number (``None`` on a group row: see ``message.sender_number``)."""
        return self.data.message.remote_number

    @property
    def contacts(self) -> list[EventContact]:
        """Address-book matches for the remote number (often empty)."""
        return self.data.contacts


class MessageReceived(MessageEvent):
    """``imessage.received``: a connected human sent the agent a message."""

    event_type: Literal["imessage.received"]


class MessageSent(MessageEvent):
    """``imessage.sent``: an outbound message was accepted for delivery."""

    event_type: Literal["imessage.sent"]


class MessageDelivered(MessageEvent):
    """``imessage.delivered``: an outbound message reached the human's device."""

    event_type: Literal["imessage.delivered"]


class DeliveryFailed(MessageEvent):
    """``imessage.delivery_failed``: an outbound message failed; see ``message.error_code``."""

    event_type: Literal["imessage.delivery_failed"]


class ReactionReceived(_Envelope):
    """``imessage.reaction_received``: a tapback, the human's or an echo of the agent's own.

    ``reaction.direction`` tells them apart: ``inbound`` for the human's, ``outbound`` for
    one the agent sent. ``on_tapback`` handlers see only inbound ones unless asked.
    """

    event_type: Literal["imessage.reaction_received"]
    data: ReactionEventData

    @property
    def reaction(self) -> Reaction:
        """The tapback."""
        return self.data.reaction

    @property
    def conversation_id(self) -> str:
        """The conversation the tapback belongs to."""
        return self.data.reaction.conversation_id

    @property
    def remote_number(self) -> str | None:
        """The human's number."""
        return self.data.reaction.remote_number

    @property
    def contacts(self) -> list[EventContact]:
        """Address-book matches for the remote number (often empty)."""
        return self.data.contacts


class UnknownEvent(_Envelope):
    """An event type this version of imbot does not know; ``data`` is left as parsed JSON."""

    event_type: str
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def conversation_id(self) -> str | None:
        """The conversation id, when the payload names one."""
        for key in ("message", "reaction"):
            inner = self.data.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("conversation_id"), str):
                return str(inner["conversation_id"])
        return None


Event = Annotated[
    MessageReceived | ReactionReceived | MessageSent | MessageDelivered | DeliveryFailed,
    Field(discriminator="event_type"),
]
"""One of the five known iMessage events, told apart by ``event_type``."""

AnyEvent = (
    MessageReceived
    | ReactionReceived
    | MessageSent
    | MessageDelivered
    | DeliveryFailed
    | UnknownEvent
)
"""A known event, or an ``UnknownEvent``."""

# Deferred, like the models (see ``WireModel``): the validators are built when a bot starts
# (``build_parsers``) or at the first parse, not when ``from imbot import Bot`` runs.
_EVENT_ADAPTER: TypeAdapter[
    MessageReceived | ReactionReceived | MessageSent | MessageDelivered | DeliveryFailed
] = TypeAdapter(Event, config=ConfigDict(defer_build=True))


def build_parsers() -> None:
    """Build the event validators now rather than at the first webhook (a few tens of ms).

    The bot calls it while starting, so the first event is parsed as fast as the rest.
    """
    _EVENT_ADAPTER.rebuild()
    UnknownEvent.model_rebuild()


def parse_event(body: bytes | str) -> AnyEvent:
    """Parse a webhook body into its typed event.

    Example:
        >>> event = parse_event(body)
        >>> if isinstance(event, MessageReceived):
        ...     print(event.message.text)

    Args:
        body: the raw request body.

    Returns:
        The typed event, or ``UnknownEvent`` for an event type imbot does not know.

    Raises:
        MalformedEvent: the body is not JSON, or not a valid envelope for its type.
    """
    try:
        return _EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not any(e["type"] == "union_tag_invalid" for e in errors):
            raise MalformedEvent(_describe(exc)) from None
    try:
        return UnknownEvent.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedEvent(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "json_invalid":
        return "the body is not valid JSON"
    return f"invalid event envelope at {where or 'top level'}: {first['msg']}"
