"""Build webhook events from plain dicts, for the bot's unit tests (no network)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from imbot.client.client import InkboxClient
from imbot.events import AnyEvent, parse_event

_ids = itertools.count(1)

HUMAN = "+15555550100"
OTHER = "+15555550199"
CONVO = "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602"
STAMP = "2026-06-09T14:30:58Z"


def offline_client() -> InkboxClient:
    """A real client that is never used: for bots whose handlers make no API call."""
    return InkboxClient(api_key="ApiKey_unit", base_url="http://127.0.0.1:9")


def message_dict(
    text: str | None = "hi",
    *,
    conversation_id: str = CONVO,
    sender: str = HUMAN,
    direction: str = "inbound",
    media: list[dict[str, Any]] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The ``message`` object of a message event."""
    return {
        "id": message_id or f"msg-{next(_ids)}",
        "conversation_id": conversation_id,
        "assignment_id": "c41f9a20-1d7b-47a5-b8e9-33a0f6d2e713",
        "direction": direction,
        "remote_number": sender,
        "content": text,
        "message_type": "message",
        "service": "imessage",
        "media": media,
        "status": "received" if direction == "inbound" else "sent",
        "is_read": False,
        "created_at": STAMP,
        "updated_at": STAMP,
    }


def message_event(
    text: str | None = "hi",
    *,
    event_type: str = "imessage.received",
    event_id: str | None = None,
    **message: Any,
) -> AnyEvent:
    """A parsed message event (received by default)."""
    body = {
        "id": event_id or f"evt_{next(_ids)}",
        "event_type": event_type,
        "timestamp": STAMP,
        "data": {
            "message": message_dict(text, **message),
            "reaction": None,
            "contacts": [],
            "agent_identities": [],
        },
    }
    return parse_event(json.dumps(body))


def reaction_event(
    kind: str = "love",
    *,
    conversation_id: str = CONVO,
    sender: str = HUMAN,
    target: str = "b7e1f3a5-9c2d-4e6f-8a0b-1c3d5e7f9a21",
    event_id: str | None = None,
) -> AnyEvent:
    """A parsed ``imessage.reaction_received`` event."""
    body = {
        "id": event_id or f"evt_{next(_ids)}",
        "event_type": "imessage.reaction_received",
        "timestamp": STAMP,
        "data": {
            "message": None,
            "reaction": {
                "id": f"rx-{next(_ids)}",
                "conversation_id": conversation_id,
                "target_message_id": target,
                "direction": "inbound",
                "reaction": kind,
                "custom_emoji": "🎉" if kind == "custom" else None,
                "remote_number": sender,
                "part_index": 0,
                "created_at": STAMP,
                "updated_at": STAMP,
            },
            "contacts": [],
            "agent_identities": [],
        },
    }
    return parse_event(json.dumps(body))


def unknown_event(event_type: str = "imessage.edited", *, event_id: str | None = None) -> AnyEvent:
    """A parsed event of a type imbot does not know."""
    body = {
        "id": event_id or f"evt_{next(_ids)}",
        "event_type": event_type,
        "timestamp": STAMP,
        "data": {"message": {"conversation_id": CONVO}},
    }
    return parse_event(json.dumps(body))


async def run_events(bot: Any, *events: AnyEvent) -> list[bool]:
    """Start ``bot``, feed it ``events`` in order, and stop it once every handler finished."""
    import anyio

    with anyio.fail_after(10):
        async with bot:
            return [await bot.feed(event) for event in events]
