"""Pydantic models of the Inkbox iMessage API's resources and request bodies.

Responses are read tolerantly, since the service adds fields and enum values over time:
unknown fields are kept (``model_extra``), unknown enum values stay plain strings, and
``to_wire()`` gives back exactly what was parsed. Request bodies are exact."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "E164",
    "E164_PATTERN",
    "FAILURE_STATUSES",
    "MAX_TEXT_LENGTH",
    "Assignment",
    "AssignmentStatus",
    "ContactRule",
    "ContactRuleStatus",
    "Conversation",
    "ConversationSummary",
    "CreateContactRule",
    "DeliveryStatus",
    "Direction",
    "FilterMode",
    "Identity",
    "MarkReadResult",
    "MediaItem",
    "MediaUpload",
    "Message",
    "MessageReaction",
    "Open",
    "Reaction",
    "Recipient",
    "RequestModel",
    "RuleAction",
    "RuleDirection",
    "SendMessage",
    "SendReaction",
    "SendStyle",
    "SendableTapback",
    "Service",
    "SigningKey",
    "SigningKeyStatus",
    "TapbackKind",
    "TapbackName",
    "TriageNumber",
    "WebhookSubscription",
    "WireModel",
    "is_e164",
]

E164_PATTERN = re.compile(r"^\+[1-9][0-9]{1,14}$")
"""An E.164 phone number: ``+``, a non-zero digit, then 1 to 14 digits (the one definition)."""

MAX_TEXT_LENGTH = 18_995
"""The longest text imbot sends, in code points: Inkbox's plugin's cap (its docs say 18,996)."""


def is_e164(value: str) -> bool:
    """Tell whether ``value`` is an E.164 phone number (``+`` then 2 to 15 digits)."""
    return bool(E164_PATTERN.match(value))


def _check_e164(value: str) -> str:
    if not is_e164(value):
        raise ValueError(f"{value!r} is not an E.164 number such as +15555550142")
    return value


E164 = Annotated[str, AfterValidator(_check_e164)]
"""A string that must be an E.164 phone number."""

_E = TypeVar("_E", bound=StrEnum)

Open = Annotated[_E | str, Field(union_mode="left_to_right")]
"""An enum read tolerantly: a known value becomes the member, an unknown one stays a string."""


class WireModel(BaseModel):
    """Base of every model read from the API: frozen, and keeping unknown fields."""

    # defer_build: validators are built at first use, not at import. Building them all made a
    # third of `from imbot import Bot`, and most are never used by a running bot.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)

    def to_wire(self) -> dict[str, Any]:
        """Dump to JSON-ready data with exactly the keys that were parsed or set."""
        return self.model_dump(mode="json", exclude_unset=True)


class RequestModel(BaseModel):
    """Base of request bodies: exact, so a typo is an error and not a silent no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def to_wire(self) -> dict[str, Any]:
        """Dump the body to send, leaving out fields that were not given."""
        return self.model_dump(mode="json", exclude_none=True)


class Direction(StrEnum):
    """Which way a message or tapback went, seen from the agent."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Service(StrEnum):
    """The transport a message actually used (iMessage may downgrade to SMS)."""

    IMESSAGE = "imessage"
    SMS = "sms"
    RCS = "rcs"


class DeliveryStatus(StrEnum):
    """Delivery state of a message or of one recipient (the SDK's nine, then three more)."""

    REGISTERED = "registered"
    PENDING = "pending"
    QUEUED = "queued"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    DECLINED = "declined"
    ERROR = "error"
    RECEIVED = "received"
    SENDING_FAILED = "sending_failed"
    BLOCKED_SPAM_FILTER = "blocked_spam_filter"
    DELIVERY_FAILED = "delivery_failed"


FAILURE_STATUSES = frozenset(
    ("declined", "error", "sending_failed", "blocked_spam_filter", "delivery_failed")
)
"""The statuses that mean an outbound message will not arrive."""


class TapbackKind(StrEnum):
    """A tapback. The first seven can be sent; ``custom`` (an emoji) only arrives."""

    LOVE = "love"
    LIKE = "like"
    DISLIKE = "dislike"
    LAUGH = "laugh"
    EMPHASIZE = "emphasize"
    QUESTION = "question"
    EYES = "eyes"
    CUSTOM = "custom"

    @property
    def sendable(self) -> bool:
        """Whether an agent may send this kind."""
        return self is not TapbackKind.CUSTOM


SendableTapback = Literal["love", "like", "dislike", "laugh", "emphasize", "question", "eyes"]
"""The tapbacks an agent may send, as a type (the values of ``TapbackKind`` but ``custom``)."""

TapbackName = Literal["love", "like", "dislike", "laugh", "emphasize", "question", "eyes", "custom"]
"""Every tapback that can arrive, as a type (the values of ``TapbackKind``)."""


class SendStyle(StrEnum):
    """A bubble or screen effect for an outbound message."""

    CELEBRATION = "celebration"
    SHOOTING_STAR = "shooting_star"
    FIREWORKS = "fireworks"
    LASERS = "lasers"
    LOVE = "love"
    CONFETTI = "confetti"
    BALLOONS = "balloons"
    SPOTLIGHT = "spotlight"
    ECHO = "echo"
    INVISIBLE = "invisible"
    GENTLE = "gentle"
    LOUD = "loud"
    SLAM = "slam"


class AssignmentStatus(StrEnum):
    """Whether a human's connection to an identity is live."""

    ACTIVE = "active"
    RELEASED = "released"


class FilterMode(StrEnum):
    """How contact rules apply: block listed numbers, or allow only listed numbers."""

    BLACKLIST = "blacklist"
    WHITELIST = "whitelist"


class RuleAction(StrEnum):
    """What a contact rule does to a matching number."""

    ALLOW = "allow"
    BLOCK = "block"


class RuleDirection(StrEnum):
    """Which traffic a contact rule covers."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


class ContactRuleStatus(StrEnum):
    """Whether a contact rule is in force."""

    ACTIVE = "active"
    PAUSED = "paused"


class MediaItem(WireModel):
    """One attachment on a message."""

    url: str
    content_type: str | None = None
    size: int | None = None


class Recipient(WireModel):
    """Per-recipient delivery state of an outbound message."""

    remote_number: str
    delivery_status: Open[DeliveryStatus] | None = None
    service: Open[Service] | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_reason: str | None = None
    error_detail: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None


class MessageReaction(WireModel):
    """A live tapback embedded in a message's ``reactions`` list."""

    id: str
    direction: Open[Direction]
    reaction: Open[TapbackKind]
    remote_number: str
    created_at: datetime
    custom_emoji: str | None = None
    part_index: int = 0


class Message(WireModel):
    """An iMessage as the API and webhooks return it (its text is ``content``, sent as ``text``)."""

    id: str
    conversation_id: str
    assignment_id: str | None = None
    direction: Open[Direction]
    remote_number: str | None = None
    content: str | None = None
    message_type: str = "message"
    service: Open[Service] = Service.IMESSAGE
    send_style: Open[SendStyle] | None = None
    media: list[MediaItem] | None = None
    was_downgraded: bool | None = None
    status: Open[DeliveryStatus] | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_reason: str | None = None
    error_detail: str | None = None
    is_read: bool = False
    is_blocked: bool = False
    recipients: list[Recipient] | None = None
    reactions: list[MessageReaction] | None = None
    created_at: datetime
    updated_at: datetime
    sender_number: str | None = None
    participants: list[str] | None = None
    is_group: bool = False
    reply_to_message_id: str | None = None
    thread_id: str | None = None
    thread_root_message_id: str | None = None
    sender_access: str | None = None
    delivery_final: bool | None = None

    @property
    def text(self) -> str:
        """The message text, or ``""`` when it has none."""
        return self.content or ""

    @property
    def has_media(self) -> bool:
        """Whether the message carries at least one attachment."""
        return bool(self.media)

    @property
    def failed(self) -> bool:
        """Whether the message will not arrive: its status is one of ``FAILURE_STATUSES``."""
        return self.status in FAILURE_STATUSES

    @property
    def final(self) -> bool:
        """Whether no further receipt will come for this message.

        ``delivery_final`` decides when the service sends it. Otherwise: delivered, failed, or
        ``sent`` on a group row or an SMS, which get no ``imessage.delivered``.
        """
        if self.delivery_final is not None:
            return self.delivery_final
        if self.status == DeliveryStatus.SENT:
            return self.is_group or self.service == Service.SMS or bool(self.was_downgraded)
        return self.status == DeliveryStatus.DELIVERED or self.failed


class Conversation(WireModel):
    """A conversation between an identity and one human (or a group)."""

    id: str
    assignment_id: str | None = None
    remote_number: str | None = None
    created_at: datetime
    updated_at: datetime
    assignment_status: Open[AssignmentStatus] | None = None
    participants: list[str] | None = None
    is_group: bool = False
    group_creation_status: str | None = None


class ConversationSummary(Conversation):
    """A conversation in a list, with its latest message and counts."""

    latest_text: str | None = None
    latest_message_at: datetime | None = None
    latest_direction: Open[Direction] | None = None
    latest_has_media: bool = False
    unread_count: int = 0
    total_count: int = 0


class Assignment(WireModel):
    """A human's connection to an identity through the router."""

    id: str
    remote_number: str
    agent_identity_id: str
    organization_id: str
    status: Open[AssignmentStatus]
    created_at: datetime
    updated_at: datetime
    released_at: datetime | None = None


class Reaction(MessageReaction):
    """A tapback as ``POST /reactions`` and webhooks give it (a group's has no assignment)."""

    conversation_id: str
    assignment_id: str | None = None
    target_message_id: str
    updated_at: datetime


class MarkReadResult(WireModel):
    """What ``POST /mark-read`` returns."""

    conversation_id: str
    updated_count: int


class MediaUpload(WireModel):
    """An uploaded file, ready to pass in ``media_urls``."""

    media_url: str
    content_type: str | None = None
    size: int | None = None


class TriageNumber(WireModel):
    """The shared router number and the text a human sends to connect."""

    number: str
    connect_command: str


class ContactRule(WireModel):
    """An allow or block rule for one number on one identity."""

    id: str
    agent_identity_id: str
    action: Open[RuleAction]
    match_type: str = "exact_number"
    match_target: str
    status: Open[ContactRuleStatus] = ContactRuleStatus.ACTIVE
    direction: Open[RuleDirection] = RuleDirection.BOTH
    contact: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class Identity(WireModel):
    """An agent identity: the handle humans connect to, and its iMessage settings."""

    id: str
    organization_id: str | None = None
    agent_handle: str
    display_name: str | None = None
    description: str | None = None
    email_address: str | None = None
    imessage_enabled: bool = False
    imessage_filter_mode: Open[FilterMode] = FilterMode.BLACKLIST
    contact_sharing_enabled: bool = True
    signing_key_configured: bool | None = None
    signing_key_created_at: datetime | None = None
    imessage_number: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WebhookSubscription(WireModel):
    """A webhook subscription owned by an agent identity."""

    id: str
    organization_id: str | None = None
    agent_identity_id: str | None = None
    mailbox_id: str | None = None
    phone_number_id: str | None = None
    owner_identity_id: str | None = None
    url: str
    event_types: list[str]
    status: str = "active"
    context_config: dict[str, Any] | None = None
    has_auth_token: bool = False
    auth_token: str | None = None
    signing_key: str | None = None  # only on create, when it minted the identity's first key
    created_at: datetime
    updated_at: datetime


class SigningKey(WireModel):
    """A freshly created or rotated signing key: the plaintext is shown only once."""

    signing_key: str
    created_at: datetime


class SigningKeyStatus(WireModel):
    """Whether an identity has a signing key, without revealing it."""

    configured: bool
    created_at: datetime | None = None


class SendMessage(RequestModel):
    """The body of ``POST /messages``: exactly one of ``conversation_id`` and ``to``."""

    conversation_id: str | None = None
    to: E164 | None = None
    text: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    media_urls: list[str] | None = Field(default=None, max_length=1)
    send_style: SendStyle | None = None
    reply_to_message_id: str | None = None
    plain_reply_fallback: bool | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        if (self.conversation_id is None) == (self.to is None):
            raise ValueError("give exactly one of conversation_id and to")
        if not (self.text and self.text.strip()) and not self.media_urls:
            raise ValueError("a message needs text or a media URL")
        if self.reply_to_message_id is not None and self.to is not None:
            raise ValueError("reply_to_message_id needs conversation_id, not to")
        return self


class SendReaction(RequestModel):
    """The body of ``POST /reactions``: one of the seven sendable tapbacks."""

    message_id: str
    reaction: SendableTapback
    part_index: int = Field(default=0, ge=0)

    def to_wire(self) -> dict[str, Any]:
        """Dump the body; ``part_index`` is always sent, as the service expects."""
        return self.model_dump(mode="json")


class CreateContactRule(RequestModel):
    """The body of a contact-rule create."""

    action: RuleAction
    match_target: E164
    match_type: Literal["exact_number"] = "exact_number"
    direction: RuleDirection | None = None
