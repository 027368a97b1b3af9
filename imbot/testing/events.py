"""Webhook events built from plain values, for testing handlers and filters without a network.

Each factory writes the JSON envelope the Inkbox API would POST and parses it with the bot's
own ``parse_event``, so the event is exactly what a handler gets in production. Ids are made
up (``evt_1``, ``msg-2``…) unless given; the other fields default to the constants below.

```python
from imbot import Bot, Context, Contains, MessageReceived
from imbot.testing import message_event, offline_client, run_events


async def test_orders_go_to_the_order_handler():
    bot = Bot(client=offline_client())
    seen = []

    @bot.on_message(Contains("order"))
    async def order(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.text)

    assert await run_events(bot, message_event("order #12"), message_event("hi")) == [True, True]
    assert seen == ["order #12"]
```
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio

from imbot.client import InkboxClient
from imbot.events import (
    DeliveryFailed,
    MessageDelivered,
    MessageReceived,
    MessageSent,
    ReactionReceived,
    UnknownEvent,
    parse_event,
)

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.events import AnyEvent

__all__ = [
    "CONVERSATION_ID",
    "OTHER_PHONE",
    "PHONE",
    "TIMESTAMP",
    "message_dict",
    "message_event",
    "offline_client",
    "reaction_event",
    "run_events",
    "unknown_event",
]

PHONE = "+15555550100"
"""The human's number in built events (the same as ``BotHarness``'s default human)."""

OTHER_PHONE = "+15555550199"
"""A second human's number, for tests about who sent what."""

CONVERSATION_ID = "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602"
"""The conversation of built events, unless given."""

TIMESTAMP = "2026-06-09T14:30:58Z"
"""The envelope timestamp and the message times of built events."""

_ASSIGNMENT_ID = "c41f9a20-1d7b-47a5-b8e9-33a0f6d2e713"
_TARGET_ID = "b7e1f3a5-9c2d-4e6f-8a0b-1c3d5e7f9a21"
_ids = itertools.count(1)  # made-up ids stay unique within a test run

MessageEventType = Literal[
    "imessage.received", "imessage.sent", "imessage.delivered", "imessage.delivery_failed"
]
"""The event types that carry a message."""


def offline_client() -> InkboxClient:
    """A real ``InkboxClient`` pointed at a closed local port, for bots that make no API call.

    Give it to a bot whose handlers you test with ``run_events``: the bot starts without an
    API key or a network. A handler that does call the API (``ctx.reply``…) fails with a
    ``TransportError``, which the bot treats as an outage and retries until ``run_events``
    times out: such a test needs the simulator instead (``BotHarness``).

    Example:
        >>> bot = Bot(client=offline_client())
    """
    return InkboxClient(api_key="ApiKey_unit", base_url="http://127.0.0.1:9")


def message_dict(
    text: str | None = "hi",
    *,
    conversation_id: str = CONVERSATION_ID,
    sender: str = PHONE,
    direction: Literal["inbound", "outbound"] = "inbound",
    media: list[dict[str, Any]] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The ``data.message`` object of a message event, as the API sends it.

    Example:
        >>> message_dict("hi", sender="+15550001111")["remote_number"]
        '+15550001111'

    Args:
        text: the message text (``content``), or ``None`` for media alone.
        conversation_id: the conversation.
        sender: the human's number (``remote_number``).
        direction: ``inbound`` (the human's) or ``outbound`` (the bot's).
        media: the attachments, like ``[{"url": "https://…/cat.jpg"}]``.
        message_id: the message id; a made-up one when omitted.

    Returns:
        The message as JSON-ready values.
    """
    return {
        "id": message_id or f"msg-{next(_ids)}",
        "conversation_id": conversation_id,
        "assignment_id": _ASSIGNMENT_ID,
        "direction": direction,
        "remote_number": sender,
        "content": text,
        "message_type": "message",
        "service": "imessage",
        "media": media,
        "status": "received" if direction == "inbound" else "sent",
        "is_read": False,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }


@overload
def message_event(
    text: str | None = ...,
    *,
    event_type: Literal["imessage.received"] = ...,
    event_id: str | None = ...,
    conversation_id: str = ...,
    sender: str = ...,
    direction: Literal["inbound", "outbound"] | None = ...,
    media: list[dict[str, Any]] | None = ...,
    message_id: str | None = ...,
) -> MessageReceived: ...


@overload
def message_event(
    text: str | None = ...,
    *,
    event_type: MessageEventType,
    event_id: str | None = ...,
    conversation_id: str = ...,
    sender: str = ...,
    direction: Literal["inbound", "outbound"] | None = ...,
    media: list[dict[str, Any]] | None = ...,
    message_id: str | None = ...,
) -> MessageReceived | MessageSent | MessageDelivered | DeliveryFailed: ...


def message_event(
    text: str | None = "hi",
    *,
    event_type: MessageEventType = "imessage.received",
    event_id: str | None = None,
    conversation_id: str = CONVERSATION_ID,
    sender: str = PHONE,
    direction: Literal["inbound", "outbound"] | None = None,
    media: list[dict[str, Any]] | None = None,
    message_id: str | None = None,
) -> MessageReceived | MessageSent | MessageDelivered | DeliveryFailed:
    """A parsed message event: a text the human sent, by default.

    Example:
        >>> event = message_event("hi", sender="+15550001111")
        >>> event.message.content, event.remote_number
        ('hi', '+15550001111')
        >>> message_event("done", event_type="imessage.delivered").message.direction
        'outbound'

    Args:
        text: the message text, or ``None`` for media alone.
        event_type: ``imessage.received`` (the human's message) or ``imessage.sent``,
            ``imessage.delivered``, ``imessage.delivery_failed`` (about the bot's).
        event_id: the envelope id (the bot drops a second event with the same id); a
            made-up one when omitted.
        conversation_id: the conversation.
        sender: the human's number.
        direction: the message's direction; ``inbound`` for a received message and
            ``outbound`` for the others when omitted.
        media: the attachments, like ``[{"url": "https://…/cat.jpg"}]``.
        message_id: the message id; a made-up one when omitted.

    Returns:
        The event, typed by ``event_type``.
    """
    if direction is None:
        direction = "inbound" if event_type == "imessage.received" else "outbound"
    message = message_dict(
        text,
        conversation_id=conversation_id,
        sender=sender,
        direction=direction,
        media=media,
        message_id=message_id,
    )
    data: dict[str, Any] = {
        "message": message,
        "reaction": None,
        "contacts": [],
        "agent_identities": [],
    }
    event = _parse(event_id, event_type, data)
    assert isinstance(event, MessageReceived | MessageSent | MessageDelivered | DeliveryFailed)
    return event


def reaction_event(
    kind: str = "love",
    *,
    conversation_id: str = CONVERSATION_ID,
    sender: str = PHONE,
    target: str = _TARGET_ID,
    custom_emoji: str | None = None,
    event_id: str | None = None,
) -> ReactionReceived:
    """A parsed ``imessage.reaction_received`` event: the human's tapback.

    Example:
        >>> event = reaction_event("laugh", target="m-9")
        >>> event.reaction.reaction, event.reaction.target_message_id
        ('laugh', 'm-9')

    Args:
        kind: ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``, ``question``,
            ``eyes`` or ``custom``.
        conversation_id: the conversation.
        sender: the human's number.
        target: the id of the message the tapback is on.
        custom_emoji: the emoji of a ``custom`` tapback (``🎉`` when omitted).
        event_id: the envelope id; a made-up one when omitted.

    Returns:
        The event.
    """
    if custom_emoji is None and kind == "custom":
        custom_emoji = "🎉"
    reaction = {
        "id": f"rx-{next(_ids)}",
        "conversation_id": conversation_id,
        "target_message_id": target,
        "direction": "inbound",
        "reaction": kind,
        "custom_emoji": custom_emoji,
        "remote_number": sender,
        "part_index": 0,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
    data: dict[str, Any] = {
        "message": None,
        "reaction": reaction,
        "contacts": [],
        "agent_identities": [],
    }
    event = _parse(event_id, "imessage.reaction_received", data)
    assert isinstance(event, ReactionReceived)
    return event


def unknown_event(
    event_type: str = "imessage.edited",
    *,
    event_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> UnknownEvent:
    """A parsed event of a type imbot does not know (a newer API's), for ``on_event("*")``.

    Example:
        >>> unknown_event("imessage.edited").conversation_id == CONVERSATION_ID
        True

    Args:
        event_type: the type.
        event_id: the envelope id; a made-up one when omitted.
        data: the payload; one naming ``CONVERSATION_ID`` when omitted.

    Returns:
        The event.
    """
    payload = {"message": {"conversation_id": CONVERSATION_ID}} if data is None else data
    event = _parse(event_id, event_type, payload)
    assert isinstance(event, UnknownEvent)
    return event


async def run_events(bot: Bot, *events: AnyEvent, timeout: float = 10.0) -> list[bool]:
    """Start ``bot`` without a server, feed it ``events`` in order, and stop it.

    Stopping waits for every handler to finish, so the test can check their effects right
    after. No webhook server, simulator or signing is involved: the events go straight to
    ``bot.feed``, as the server would pass them on.

    Example:
        >>> hi = message_event("hi", event_id="evt_1")
        >>> await run_events(bot, hi, hi)  # the second is a duplicate
        [True, False]

    Args:
        bot: the bot, not running (built with ``client=offline_client()`` when its handlers
            make no API call).
        *events: the events.
        timeout: seconds the whole run may take. A handler still running then gets the
            bot's ``drain_timeout`` to finish before it is cancelled.

    Returns:
        ``bot.feed``'s answer for each event: ``False`` for a duplicate it dropped.

    Raises:
        TimeoutError: the handlers did not finish within ``timeout``.
    """
    results: list[bool] = []
    with anyio.move_on_after(timeout) as scope:
        async with bot:
            results = [await bot.feed(event) for event in events]
    # The bot shields its drain from cancellation: judge by the deadline, not by an exception.
    if scope.cancel_called:
        raise TimeoutError(f"run_events: the bot's handlers did not finish within {timeout:g} s")
    return results


def _parse(event_id: str | None, event_type: str, data: dict[str, Any]) -> AnyEvent:
    body = {
        "id": event_id or f"evt_{next(_ids)}",
        "event_type": event_type,
        "timestamp": TIMESTAMP,
        "data": data,
    }
    return parse_event(json.dumps(body))
