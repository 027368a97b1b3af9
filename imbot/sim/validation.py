"""Request bodies, validated into FastAPI-style 422 answers (parameters: ``params``).

Inkbox is a FastAPI service, so a bad request gets ``{"detail": [{"loc", "msg", "type"}]}``.
Malformed JSON is answered the way FastAPI answers it: ``422`` with ``type: json_invalid``.
Unknown body fields are ignored, as FastAPI ignores them.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imbot.models import E164_PATTERN, MAX_TEXT_LENGTH
from imbot.models import SendableTapback as Sendable
from imbot.models import TapbackName as AnyReaction
from imbot.sim.responses import ApiError

__all__ = [
    "E164",
    "EVENT_CATALOG",
    "MAX_TEXT",
    "SENDABLE_REACTIONS",
    "ConversationRef",
    "IdentityCreate",
    "IdentityUpdate",
    "KeyRequest",
    "PhoneMessage",
    "PhoneReaction",
    "PhoneState",
    "ReactionBody",
    "RuleCreate",
    "RuleUpdate",
    "SendBody",
    "SubscriptionCreate",
    "SubscriptionUpdate",
    "check_e164",
    "parse_body",
]

E164 = E164_PATTERN
MAX_TEXT = MAX_TEXT_LENGTH
SENDABLE_REACTIONS: tuple[str, ...] = get_args(Sendable)

SendStyle = Literal[
    "celebration",
    "shooting_star",
    "fireworks",
    "lasers",
    "love",
    "confetti",
    "balloons",
    "spotlight",
    "echo",
    "invisible",
    "gentle",
    "loud",
    "slam",
]
FilterMode = Literal["blacklist", "whitelist"]
RuleDirection = Literal["inbound", "outbound", "both"]

EVENT_CATALOG = (
    "imessage.received",
    "imessage.reaction_received",
    "imessage.sent",
    "imessage.delivered",
    "imessage.delivery_failed",
)
"""The events the simulator fires: its webhook catalog, and all a subscription may select."""

ModelT = TypeVar("ModelT", bound=BaseModel)


def check_e164(value: str) -> str:
    """Return ``value`` when it is an E.164 number, else raise ``ValueError``."""
    if not E164.match(value):
        raise ValueError("must be an E.164 phone number like +15551234567")
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SendBody(_Body):
    """``POST /imessage/messages``."""

    conversation_id: uuid.UUID | None = None
    to: str | list[str] | None = None
    text: str | None = None
    media_urls: list[str] | None = None
    send_style: SendStyle | None = None
    reply_to_message_id: uuid.UUID | None = None
    plain_reply_fallback: bool = True

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not 1 <= len(value) <= 8 or len(set(value)) != len(value):
                raise ValueError("must be 1 to 8 distinct E.164 numbers")
            for number in value:
                check_e164(number)
            if len(value) > 1:
                raise ValueError(
                    "group sends need a dedicated line; the shared router is one-to-one"
                )
            return value
        return None if value is None else check_e164(value)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters")
        return value

    @field_validator("media_urls")
    @classmethod
    def _media(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) > 1:
            raise ValueError("at most one media URL may be sent per message")
        for url in value:
            _check_url(url)
        return value

    @model_validator(mode="after")
    def _shape(self) -> SendBody:
        if (self.to is None) == (self.conversation_id is None):
            raise ValueError("exactly one of 'to' and 'conversation_id' is required")
        has_text = self.text is not None and self.text.strip() != ""
        if not has_text and not self.media_urls:
            raise ValueError("a message needs non-empty 'text' or one 'media_urls' item")
        if self.reply_to_message_id is not None and self.to is not None:
            raise ValueError("'reply_to_message_id' needs 'conversation_id', not 'to'")
        return self

    @property
    def recipient(self) -> str | None:
        """The single ``to`` number, list or not."""
        if isinstance(self.to, list):
            return self.to[0]
        return self.to


class ReactionBody(_Body):
    """``POST /imessage/reactions``; ``custom`` cannot be sent."""

    message_id: uuid.UUID
    reaction: Sendable
    part_index: int = Field(0, ge=0)


class ConversationRef(_Body):
    """``POST /imessage/mark-read`` and ``/typing``."""

    conversation_id: uuid.UUID


class RuleCreate(_Body):
    """``POST /identities/{handle}/contact-rules``."""

    action: Literal["allow", "block"]
    match_target: str
    match_type: Literal["exact_number"] = "exact_number"
    direction: RuleDirection | None = None

    @field_validator("match_target")
    @classmethod
    def _target(cls, value: str) -> str:
        return check_e164(value)


class RuleUpdate(_Body):
    """``PATCH /identities/{handle}/contact-rules/{id}``: docs and SDK fields both accepted."""

    action: Literal["allow", "block"] | None = None
    status: Literal["active", "paused"] | None = None
    direction: RuleDirection | None = None
    apply_to: Literal["inbound", "outbound"] | None = None

    @model_validator(mode="after")
    def _shape(self) -> RuleUpdate:
        if self.model_fields_set.isdisjoint({"action", "status", "direction", "apply_to"}):
            raise ValueError("give at least one of action, status, direction, apply_to")
        if self.apply_to is not None and (self.action is None or self.direction is not None):
            raise ValueError("'apply_to' needs 'action' and cannot be combined with 'direction'")
        return self


class IdentityCreate(_Body):
    """``POST /identities``."""

    agent_handle: str
    display_name: str | None = None
    description: str | None = None
    imessage_enabled: bool = False
    contact_sharing_enabled: bool = True
    claim_imessage_number: bool | None = None

    @field_validator("agent_handle")
    @classmethod
    def _handle(cls, value: str) -> str:
        return check_handle(value)


def check_handle(value: str) -> str:
    """Strip a leading ``@`` and check the handle's characters."""
    handle = value.removeprefix("@")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", handle):
        raise ValueError(
            "must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return handle


class IdentityUpdate(_Body):
    """``PATCH /identities/{handle}``: only the fields present change."""

    display_name: str | None = None
    description: str | None = None
    imessage_enabled: bool | None = None
    contact_sharing_enabled: bool | None = None
    imessage_filter_mode: FilterMode | None = None
    phone_filter_mode: FilterMode | None = None
    phone_inbound_filter_mode: FilterMode | None = None
    phone_outbound_filter_mode: FilterMode | None = None
    imessage_number_id: uuid.UUID | None = None
    claim_imessage_number: bool | None = None

    @model_validator(mode="after")
    def _modes(self) -> IdentityUpdate:
        modes = {
            mode
            for mode in (
                self.imessage_filter_mode,
                self.phone_filter_mode,
                self.phone_inbound_filter_mode,
                self.phone_outbound_filter_mode,
            )
            if mode is not None
        }
        if len(modes) > 1:
            raise ValueError(
                "the simulator keeps one iMessage filter mode for both directions; "
                "the filter-mode fields must agree"
            )
        return self

    @property
    def filter_mode(self) -> str | None:
        """The filter mode any of the mode fields asks for, if any."""
        for mode in (
            self.imessage_filter_mode,
            self.phone_filter_mode,
            self.phone_inbound_filter_mode,
            self.phone_outbound_filter_mode,
        ):
            if mode is not None:
                return mode
        return None


def _check_event_types(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must be a non-empty list")
    if len(set(value)) != len(value):
        raise ValueError("must not repeat an event type")
    # The SDK checks only the family prefix and leaves exact names to the API, so an
    # unknown name must be refused here, or a typo would subscribe to nothing.
    unknown = [event_type for event_type in value if event_type not in EVENT_CATALOG]
    if unknown:
        raise ValueError(
            f"unknown event type {unknown[0]!r}; subscribable event types: "
            + ", ".join(EVENT_CATALOG)
        )
    return value


class SubscriptionCreate(_Body):
    """``POST /webhooks/subscriptions``."""

    url: str
    event_types: list[str]
    agent_identity_id: uuid.UUID | None = None
    mailbox_id: uuid.UUID | None = None
    phone_number_id: uuid.UUID | None = None
    context_config: dict[str, Any] | None = None
    auth_token: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _check_event_types(value)

    @model_validator(mode="after")
    def _owner(self) -> SubscriptionCreate:
        owners = [self.agent_identity_id, self.mailbox_id, self.phone_number_id]
        if sum(owner is not None for owner in owners) != 1:
            raise ValueError(
                "exactly one of agent_identity_id, mailbox_id, phone_number_id is required"
            )
        if self.agent_identity_id is None:
            raise ValueError("the simulator supports identity-owned subscriptions only")
        return self


class SubscriptionUpdate(_Body):
    """``PATCH /webhooks/subscriptions/{id}``: only the fields present change."""

    url: str | None = None
    event_types: list[str] | None = None
    context_config: dict[str, Any] | None = None
    auth_token: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("must not be null")
        return _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("must not be null")
        return _check_event_types(value)


class PhoneMessage(_Body):
    """``POST /sim/v1/phones/{number}/messages``: the human texts."""

    text: str | None = None
    media_url: str | None = None
    to: str | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters")
        return value

    @field_validator("media_url")
    @classmethod
    def _media(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else check_handle(value)

    @model_validator(mode="after")
    def _content(self) -> PhoneMessage:
        if (self.text is None or not self.text.strip()) and self.media_url is None:
            raise ValueError("a message needs non-empty 'text' or a 'media_url'")
        return self


class PhoneReaction(_Body):
    """``POST /sim/v1/phones/{number}/reactions``: the human tapbacks (``custom`` allowed)."""

    message_id: uuid.UUID
    reaction: AnyReaction
    custom_emoji: str | None = None

    @model_validator(mode="after")
    def _custom(self) -> PhoneReaction:
        if self.reaction == "custom" and not self.custom_emoji:
            raise ValueError("a 'custom' tapback needs 'custom_emoji'")
        if self.reaction != "custom":
            self.custom_emoji = None
        return self


class KeyRequest(_Body):
    """``POST /sim/v1/identities/{handle}/api-keys`` (the body is optional)."""

    label: str | None = None


class PhoneState(_Body):
    """``PUT /sim/v1/phones/{number}``: each field given changes; one left out stays."""

    unreachable: bool | None = None
    error_code: str | None = None
    delivery: Literal["imessage", "sms", "declined"] | None = None
    name: str | None = Field(default=None, max_length=200)
    memories: list[Annotated[str, Field(max_length=2000)]] | None = Field(
        default=None, max_length=50
    )
    agent_handle: str | None = None


def _errors(error: ValidationError, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in error.errors(include_url=False):
        entry: dict[str, Any] = {
            "loc": [prefix, *item["loc"]],
            "msg": item["msg"],
            "type": item["type"],
        }
        out.append(entry)
    return out


def parse_body(raw: bytes, model: type[ModelT]) -> ModelT:
    """Decode a JSON body and validate it against ``model``.

    Raises:
        ApiError: 422 with ``json_invalid`` for malformed JSON, ``missing`` for an empty
            body, or the model's validation errors.
    """
    if not raw.strip():
        raise ApiError(422, [{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ApiError(
            422,
            [
                {
                    "loc": ["body", position],
                    "msg": "JSON decode error",
                    "type": "json_invalid",
                    "ctx": {"error": reason},
                }
            ],
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, _errors(exc, "body")) from None
