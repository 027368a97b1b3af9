"""Wire models: the wire document's examples round-trip, and the official SDK accepts our JSON.

The official ``inkbox`` SDK is used only as an oracle: its ``_from_dict`` parsers must accept
what our models dump, and read the same values as from the original JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from inkbox.identities.types import AgentIdentitySummary, _AgentIdentityData
from inkbox.imessage import types as sdk
from inkbox.signing_keys import SigningKey as SdkSigningKey
from inkbox.signing_keys import SigningKeyStatus as SdkSigningKeyStatus
from inkbox.webhook_subscriptions import (
    WebhookSubscription as SdkSubscription,
)
from inkbox.webhook_subscriptions import (
    WebhookSubscriptionCreateResponse as SdkSubscriptionCreated,
)
from pydantic import ValidationError

from imbot import models as m

EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "wire_examples.json"
_DATA = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
EX: dict[str, Any] = {**_DATA["examples"], **_DATA["constructed"]}

# example name -> (our model, the SDK type that parses the same object)
PAIRS: dict[str, tuple[type[m.WireModel], Any]] = {
    "message": (m.Message, sdk.IMessage),
    "conversation_summary": (m.ConversationSummary, sdk.IMessageConversationSummary),
    "conversation": (m.Conversation, sdk.IMessageConversation),
    "assignment": (m.Assignment, sdk.IMessageAssignment),
    "reaction": (m.Reaction, sdk.IMessageReaction),
    "contact_rule": (m.ContactRule, sdk.IMessageContactRule),
    "triage_number": (m.TriageNumber, sdk.IMessageTriageNumber),
    "mark_read_result": (m.MarkReadResult, sdk.IMessageMarkReadResult),
    "media_upload": (m.MediaUpload, sdk.IMessageMediaUpload),
    "identity": (m.Identity, _AgentIdentityData),
    "signing_key": (m.SigningKey, SdkSigningKey),
    "signing_key_status": (m.SigningKeyStatus, SdkSigningKeyStatus),
    "webhook_subscription": (m.WebhookSubscription, SdkSubscription),
    "webhook_subscription_created": (m.WebhookSubscription, SdkSubscriptionCreated),
}


def example(name: str) -> Any:
    # A fresh copy, so no test can change another's data.
    return json.loads(json.dumps(EX[name]))


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_examples_round_trip_exactly(name: str) -> None:
    model_type, _ = PAIRS[name]
    parsed = model_type.model_validate(example(name))
    assert parsed.to_wire() == EX[name]
    assert model_type.model_validate_json(json.dumps(EX[name])).to_wire() == EX[name]


def test_send_response_message_round_trips() -> None:
    message = m.Message.model_validate(example("send_response")["message"])
    assert message.to_wire() == EX["send_response"]["message"]
    assert message.status == m.DeliveryStatus.QUEUED
    assert message.recipients is not None
    assert message.recipients[0].delivery_status == m.DeliveryStatus.QUEUED


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_official_sdk_accepts_our_json(name: str) -> None:
    model_type, sdk_type = PAIRS[name]
    parsed = model_type.model_validate(example(name))
    from_original = sdk_type._from_dict(example(name))
    for dumped in (parsed.to_wire(), json.loads(parsed.model_dump_json())):
        assert sdk_type._from_dict(dumped) == from_original


def test_official_sdk_accepts_the_send_response_message() -> None:
    raw = example("send_response")["message"]
    dumped = json.loads(m.Message.model_validate(raw).model_dump_json())
    assert sdk.IMessage._from_dict(dumped) == sdk.IMessage._from_dict(raw)


def test_official_sdk_identity_summary_accepts_our_json() -> None:
    dumped = json.loads(m.Identity.model_validate(example("identity")).model_dump_json())
    assert AgentIdentitySummary._from_dict(dumped) == AgentIdentitySummary._from_dict(
        example("identity")
    )


def now() -> datetime:
    return datetime(2026, 6, 9, 14, 30, tzinfo=UTC)


def test_models_built_in_code_dump_what_the_sdk_needs() -> None:
    # A model built from code (as the simulator does) must dump with model_dump_json():
    # to_wire() would leave out the defaults it was not given.
    message = m.Message(
        id="5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11",
        conversation_id="0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602",
        direction=m.Direction.OUTBOUND,
        created_at=now(),
        updated_at=now(),
    )
    parsed = sdk.IMessage._from_dict(json.loads(message.model_dump_json()))
    assert parsed.message_type == "message"
    assert parsed.service == sdk.IMessageService.IMESSAGE
    assert parsed.is_read is False
    rule = m.ContactRule(
        id="e2f4a6c8-0b1d-4e3f-9a5b-7c9d1e3f5a70",
        agent_identity_id="7a1b2c3d-4e5f-4a6b-9c8d-0e1f2a3b4c5d",
        action=m.RuleAction.BLOCK,
        match_target="+15555550199",
        created_at=now(),
        updated_at=now(),
    )
    sdk_rule = sdk.IMessageContactRule._from_dict(json.loads(rule.model_dump_json()))
    assert sdk_rule.direction == "both"
    assert sdk_rule.status == "active"


def test_unknown_fields_are_kept() -> None:
    raw = example("message")
    raw["brand_new_field"] = {"nested": [1, 2]}
    raw["reactions"][0]["intensity"] = 3
    message = m.Message.model_validate(raw)
    assert message.model_extra == {"brand_new_field": {"nested": [1, 2]}}
    assert message.to_wire() == raw
    assert message.reactions is not None
    assert message.reactions[0].model_extra == {"intensity": 3}


def test_unknown_enum_values_are_accepted() -> None:
    raw = example("message")
    raw.update(
        direction="sideways",
        service="carrier_pigeon",
        status="teleported",
        send_style="wobble",
        message_type="hologram",
    )
    raw["reactions"][0]["reaction"] = "hug"
    message = m.Message.model_validate(raw)
    assert message.direction == "sideways"
    assert message.service == "carrier_pigeon"
    assert message.status == "teleported"
    assert message.send_style == "wobble"
    assert message.reactions is not None
    assert message.reactions[0].reaction == "hug"
    assert message.to_wire() == raw
    rule = example("contact_rule")
    rule.update(action="quarantine", status="archived", direction="sideways")
    assert m.ContactRule.model_validate(rule).to_wire() == rule


def test_known_enum_values_become_members() -> None:
    message = m.Message.model_validate(example("message"))
    assert message.direction is m.Direction.INBOUND
    assert message.service is m.Service.IMESSAGE
    assert message.status is m.DeliveryStatus.RECEIVED
    reaction = m.Reaction.model_validate(example("reaction"))
    assert reaction.reaction is m.TapbackKind.LOVE
    summary = m.ConversationSummary.model_validate(example("conversation_summary"))
    assert summary.assignment_status is m.AssignmentStatus.ACTIVE
    identity = m.Identity.model_validate(example("identity"))
    assert identity.imessage_filter_mode is m.FilterMode.BLACKLIST


def test_timestamps_with_offsets_keep_their_instant() -> None:
    raw = example("assignment")
    raw["created_at"] = "2026-06-08T11:11:40+02:00"
    raw["updated_at"] = "2026-06-08T09:11:40.123456+00:00"
    wire = m.Assignment.model_validate(raw).to_wire()
    for key in ("created_at", "updated_at"):
        assert datetime.fromisoformat(wire[key]) == datetime.fromisoformat(raw[key])
    assert wire["updated_at"] == "2026-06-08T09:11:40.123456Z"


def test_models_are_frozen() -> None:
    message = m.Message.model_validate(example("message"))
    with pytest.raises(ValidationError):
        message.content = "changed"  # type: ignore[misc]


def test_missing_required_fields_are_errors() -> None:
    raw = example("message")
    del raw["conversation_id"]
    with pytest.raises(ValidationError):
        m.Message.model_validate(raw)


def test_message_helpers() -> None:
    message = m.Message.model_validate(example("message"))
    assert message.text == "Can you move my booking to Friday?"
    assert message.has_media is False
    raw = example("event_received")["data"]["message"]
    with_media = m.Message.model_validate(raw)
    assert with_media.has_media
    assert with_media.media is not None
    assert with_media.media[0].size == 20480
    raw["content"] = None
    assert m.Message.model_validate(raw).text == ""


def test_tapback_kinds() -> None:
    sendable = [k.value for k in m.TapbackKind if k.sendable]
    assert sendable == ["love", "like", "dislike", "laugh", "emphasize", "question", "eyes"]
    assert not m.TapbackKind.CUSTOM.sendable
    assert len(m.SendStyle) == 13


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("+15555550142", True),
        ("+12", True),
        ("+123456789012345", True),
        ("+1234567890123456", False),
        ("+1", False),
        ("+05555550142", False),
        ("15555550142", False),
        ("+1 555 555 0142", False),
        ("dana@example.com", False),
    ],
)
def test_is_e164(value: str, ok: bool) -> None:
    assert m.is_e164(value) is ok


def test_send_message_body() -> None:
    body = m.SendMessage(conversation_id="c1", text="hi", send_style=m.SendStyle.CONFETTI)
    assert body.to_wire() == {"conversation_id": "c1", "text": "hi", "send_style": "confetti"}
    assert m.SendMessage.model_validate(EX["send_request"]).to_wire() == EX["send_request"]
    by_number = m.SendMessage(to="+15555550142", media_urls=["https://x/a.png"])
    assert by_number.to_wire() == {"to": "+15555550142", "media_urls": ["https://x/a.png"]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": "x"},
        {"conversation_id": "c", "to": "+15555550142", "text": "x"},
        {"conversation_id": "c"},
        {"conversation_id": "c", "text": " \n"},
        {"conversation_id": "c", "text": "x" * 18_997},
        {"conversation_id": "c", "media_urls": ["a", "b"]},
        {"to": "555", "text": "x"},
        {"to": "+15555550142", "text": "x", "reply_to_message_id": "m"},
        {"conversation_id": "c", "text": "x", "send_style": "wobble"},
        {"conversation_id": "c", "text": "x", "unknown_field": 1},
    ],
)
def test_send_message_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.SendMessage(**kwargs)


def test_send_message_limits_are_inclusive() -> None:
    assert m.SendMessage(conversation_id="c", text="x" * m.MAX_TEXT_LENGTH)
    assert m.SendMessage(conversation_id="c", media_urls=["a"])


def test_send_reaction_body() -> None:
    assert m.SendReaction(message_id="m", reaction="like").to_wire() == {
        "message_id": "m",
        "reaction": "like",
        "part_index": 0,
    }
    with pytest.raises(ValidationError):
        m.SendReaction(message_id="m", reaction="custom")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        m.SendReaction(message_id="m", reaction="like", part_index=-1)


def test_create_contact_rule_body() -> None:
    rule = m.CreateContactRule(action=m.RuleAction.BLOCK, match_target="+15555550199")
    assert rule.to_wire() == {
        "action": "block",
        "match_target": "+15555550199",
        "match_type": "exact_number",
    }
    both = m.CreateContactRule(action="allow", match_target="+15555550199", direction="inbound")  # type: ignore[arg-type]
    assert both.to_wire()["direction"] == "inbound"
    with pytest.raises(ValidationError):
        m.CreateContactRule(action=m.RuleAction.BLOCK, match_target="5550199")
