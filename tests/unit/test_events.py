"""Webhook events: every example parses to its type; unknown types and malformed bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inkbox.imessage import types as sdk

from imbot.errors import MalformedEvent, WebhookError
from imbot.events import (
    EVENT_TYPES,
    DeliveryFailed,
    MessageDelivered,
    MessageEvent,
    MessageReceived,
    MessageSent,
    ReactionReceived,
    UnknownEvent,
    parse_event,
)
from imbot.models import DeliveryStatus, Direction, TapbackKind

EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "wire_examples.json"
_DATA = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
EX: dict[str, Any] = {**_DATA["examples"], **_DATA["constructed"]}

CASES = [
    ("event_received", MessageReceived),
    ("event_reaction_received", ReactionReceived),
    ("event_sent", MessageSent),
    ("event_delivered", MessageDelivered),
    ("event_delivery_failed", DeliveryFailed),
]


def body(name: str, **changes: Any) -> bytes:
    raw = json.loads(json.dumps(EX[name]))
    raw.update(changes)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(("name", "event_type"), CASES)
def test_every_example_parses_to_its_type(name: str, event_type: type[Any]) -> None:
    event = parse_event(body(name))
    assert type(event) is event_type
    assert event.event_type == EX[name]["event_type"]
    assert event.id == EX[name]["id"]
    assert event.conversation_id == "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602"
    assert event.remote_number == "+15555550142"
    assert event.to_wire() == EX[name]
    # str bodies parse the same as bytes.
    assert parse_event(body(name).decode()).to_wire() == EX[name]


def test_the_five_event_types() -> None:
    assert tuple(EX[name]["event_type"] for name, _ in CASES) == EVENT_TYPES


@pytest.mark.parametrize("name", [n for n, t in CASES if t is not ReactionReceived])
def test_message_events_carry_the_message(name: str) -> None:
    event = parse_event(body(name))
    assert isinstance(event, MessageEvent)
    assert event.message.id == EX[name]["data"]["message"]["id"]
    assert event.data.reaction is None
    # The official SDK reads the message we dump as it reads the original.
    dumped = json.loads(event.message.model_dump_json())
    original = EX[name]["data"]["message"]
    assert sdk.IMessage._from_dict(dumped) == sdk.IMessage._from_dict(original)


def test_received_details() -> None:
    event = parse_event(body("event_received"))
    assert isinstance(event, MessageReceived)
    assert event.message.direction is Direction.INBOUND
    assert event.message.text == "Can you move my booking to Friday?"
    assert event.data.contacts[0].name == "Dana Lee"
    assert event.data.agent_identities == []


def test_delivery_failed_details() -> None:
    event = parse_event(body("event_delivery_failed"))
    assert isinstance(event, DeliveryFailed)
    assert event.message.status is DeliveryStatus.ERROR
    assert event.message.error_code == "media_fetch_failed"


def test_reaction_event() -> None:
    event = parse_event(body("event_reaction_received"))
    assert isinstance(event, ReactionReceived)
    assert event.reaction.reaction is TapbackKind.CUSTOM
    assert event.reaction.custom_emoji == "🎉"
    assert event.data.message is None
    original = EX["event_reaction_received"]["data"]["reaction"]
    dumped = json.loads(event.reaction.model_dump_json())
    assert sdk.IMessageReaction._from_dict(dumped) == sdk.IMessageReaction._from_dict(original)


def test_extra_envelope_fields_are_kept() -> None:
    raw = json.loads(body("event_received"))
    raw["companion"] = {"mode": "on"}
    raw["data"]["context"] = {"texts": []}
    raw["delivery_attempt"] = 2
    event = parse_event(json.dumps(raw))
    assert event.to_wire() == raw
    assert event.model_extra == {"delivery_attempt": 2}


def test_missing_lists_default_to_empty() -> None:
    raw = json.loads(body("event_sent"))
    del raw["data"]["contacts"]
    del raw["data"]["agent_identities"]
    event = parse_event(json.dumps(raw))
    assert isinstance(event, MessageSent)
    assert event.data.contacts == []
    assert event.data.agent_identities == []


def test_unknown_event_type() -> None:
    event = parse_event(body("event_received", event_type="imessage.edited"))
    assert isinstance(event, UnknownEvent)
    assert event.event_type == "imessage.edited"
    assert event.conversation_id == "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602"
    assert event.data["message"]["content"] == "Can you move my booking to Friday?"


def test_unknown_event_with_a_reaction_or_nothing() -> None:
    event = parse_event(body("event_reaction_received", event_type="imessage.reaction_removed"))
    assert isinstance(event, UnknownEvent)
    assert event.conversation_id == "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602"
    bare = parse_event(
        json.dumps({"id": "evt_x", "event_type": "phone.call", "timestamp": "2026-06-09T14:00:00Z"})
    )
    assert isinstance(bare, UnknownEvent)
    assert bare.data == {}
    assert bare.conversation_id is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "top level"),
        (b'{"event_type": "imessage.received"}', ""),
        (
            json.dumps(
                {
                    "id": "evt_1",
                    "event_type": "imessage.received",
                    "timestamp": "2026-06-09T14:00:00Z",
                }
            ).encode(),
            "data",
        ),
        (
            json.dumps(
                {
                    "id": "evt_1",
                    "event_type": "imessage.received",
                    "timestamp": "2026-06-09T14:00:00Z",
                    "data": {"message": None, "reaction": None},
                }
            ).encode(),
            "data",
        ),
        (
            json.dumps(
                {
                    "id": "evt_1",
                    "event_type": "imessage.unknown",
                    "timestamp": "yesterday",
                    "data": {},
                }
            ).encode(),
            "timestamp",
        ),
        (json.dumps({"id": "evt_1", "event_type": 7, "timestamp": "x", "data": {}}).encode(), ""),
    ],
)
def test_malformed_bodies(raw: bytes, fragment: str) -> None:
    with pytest.raises(MalformedEvent) as info:
        parse_event(raw)
    assert fragment in str(info.value)
    assert isinstance(info.value, WebhookError)


def test_a_message_event_with_a_broken_message() -> None:
    raw = json.loads(body("event_received"))
    del raw["data"]["message"]["created_at"]
    with pytest.raises(MalformedEvent, match="created_at"):
        parse_event(json.dumps(raw))
