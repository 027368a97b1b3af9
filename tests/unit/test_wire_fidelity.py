"""Wire shapes the real service uses that the SDK and Inkbox's own plugin show.

Failure statuses and ``delivery_final``, SMS downgrades (``sent`` is final), group rows,
tapbacks without an assignment and ``custom`` ones, threaded replies, the text limit, and
the envelope's ``contacts``, ``agent_identities`` (camelCase too) and ``context``. The
official ``inkbox`` SDK parses each shape it has a type for, as an oracle.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from inkbox.imessage import types as sdk
from pydantic import ValidationError

from imbot import Bot, Context, MessageReceived
from imbot.client import InkboxClient
from imbot.client.transport import AiohttpTransport, Request, Response
from imbot.errors import InvalidRequest
from imbot.events import MessageReceived as Received
from imbot.events import ReactionReceived, parse_event
from imbot.models import (
    FAILURE_STATUSES,
    MAX_TEXT_LENGTH,
    DeliveryStatus,
    Message,
    Reaction,
    SendMessage,
    Service,
)
from imbot.testing import eventually, message_event, serving
from imbot.testing.agent import SimAgent, local_simulator, sim_agent

EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "wire_examples.json"
_DATA = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
EX: dict[str, Any] = {**_DATA["examples"], **_DATA["constructed"]}
HUMAN = "+15555550133"


async def bot_texts(agent: SimAgent) -> list[str | None]:
    """The texts the bot sent, read through the API (the phone also shows Inkbox's own notes)."""
    return [message.content for message in await agent.outbound()]


def message(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(json.dumps(EX["message"]))
    row.update(changes)
    return row


def envelope(event: str, **data: Any) -> bytes:
    raw: dict[str, Any] = json.loads(json.dumps(EX[event]))
    raw["data"].update(data)
    return json.dumps(raw).encode()


# --- statuses and receipts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", ["declined", "error", "sending_failed", "blocked_spam_filter", "delivery_failed"]
)
def test_every_failure_status_is_known_and_failed(status: str) -> None:
    parsed = Message.model_validate(message(direction="outbound", status=status))
    assert parsed.status == DeliveryStatus(status)
    assert parsed.status in FAILURE_STATUSES
    assert parsed.failed and parsed.final
    if status in ("declined", "error"):  # the SDK's enum has these two
        assert sdk.IMessage._from_dict(message(status=status)).status == status


def test_an_unknown_status_stays_a_string() -> None:
    parsed = Message.model_validate(message(status="rerouted_by_carrier"))
    assert parsed.status == "rerouted_by_carrier"
    assert not parsed.failed and not parsed.final


@pytest.mark.parametrize(
    ("changes", "final"),
    [
        ({"status": "queued"}, False),
        ({"status": "sent"}, False),  # iMessage 1:1: imessage.delivered follows
        ({"status": "delivered"}, True),
        ({"status": "sent", "service": "sms", "was_downgraded": True}, True),
        ({"status": "sent", "service": "sms"}, True),
        ({"status": "sent", "was_downgraded": True}, True),
        ({"status": "sent", "is_group": True, "remote_number": None}, True),
        ({"status": "sent", "delivery_final": True}, True),
        ({"status": "delivered", "delivery_final": False}, False),  # the service decides
    ],
)
def test_which_receipt_is_the_last(changes: dict[str, Any], final: bool) -> None:
    row = message(direction="outbound", **changes)
    parsed = Message.model_validate(row)
    assert parsed.final is final
    assert parsed.to_wire() == row  # delivery_final, when sent, survives a round trip
    row.pop("delivery_final", None)
    sdk.IMessage._from_dict(row)  # the SDK reads the same row


def test_an_sms_downgrade_parses_in_imbot_and_the_sdk() -> None:
    row = message(direction="outbound", status="sent", service="sms", was_downgraded=True)
    theirs = sdk.IMessage._from_dict(row)
    ours = Message.model_validate(row)
    assert (theirs.service, theirs.was_downgraded) == (sdk.IMessageService.SMS, True)
    assert (ours.service, ours.was_downgraded) == (Service.SMS, True)
    event = parse_event(envelope("event_sent", message=row))
    assert isinstance(event.message, Message) and event.message.final  # type: ignore[union-attr]


# --- groups and tapbacks ---------------------------------------------------------------------


def test_a_group_row_names_its_sender() -> None:
    row = message(
        assignment_id=None,
        remote_number=None,
        sender_number="+15555550177",
        participants=["+15555550177", "+15555550178"],
        is_group=True,
    )
    theirs = sdk.IMessage._from_dict(row)
    assert theirs.remote_number is None and theirs.is_group
    event = parse_event(envelope("event_received", message=row))
    assert isinstance(event, Received)
    assert event.remote_number is None
    ctx: Context[Any] = Context(cast(Any, None), event)
    assert ctx.sender == "+15555550177"
    assert event.message.participants == ["+15555550177", "+15555550178"]


def test_a_group_tapback_has_no_assignment_and_custom_carries_its_emoji() -> None:
    reaction = json.loads(json.dumps(EX["event_reaction_received"]["data"]["reaction"]))
    reaction.pop("assignment_id")
    reaction.update(reaction="custom", custom_emoji="🎉")
    theirs = sdk.IMessageReaction._from_dict(reaction)
    assert theirs.assignment_id is None and theirs.custom_emoji == "🎉"
    event = parse_event(envelope("event_reaction_received", reaction=reaction))
    assert isinstance(event, ReactionReceived)
    assert event.reaction.assignment_id is None
    assert (event.reaction.reaction, event.reaction.custom_emoji) == ("custom", "🎉")
    assert Reaction.model_validate(reaction).to_wire() == reaction


def test_threaded_reply_fields() -> None:
    row = message(
        reply_to_message_id="b7e1f3a5-9c2d-4e6f-8a0b-1c3d5e7f9a21",
        thread_id="0a1b2c3d-4e5f-4a6b-9c8d-0e1f2a3b4c5d",
        thread_root_message_id="b7e1f3a5-9c2d-4e6f-8a0b-1c3d5e7f9a21",
    )
    theirs = sdk.IMessage._from_dict(row)
    ours = Message.model_validate(row)
    assert str(theirs.thread_id) == ours.thread_id == row["thread_id"]
    assert str(theirs.reply_to_message_id) == ours.reply_to_message_id
    assert ours.thread_root_message_id == row["thread_root_message_id"]


# --- the envelope ----------------------------------------------------------------------------


def test_contacts_identities_and_context() -> None:
    contacts = [{"id": "c-1", "name": "Dana Lee", "memories": ["prefers mornings"]}]
    identities = [{"id": "i-1", "agent_handle": "helper", "display_name": "Helper"}]
    context = {"conversation": {"items": [], "mode": "count"}}
    event = parse_event(
        envelope("event_received", contacts=contacts, agent_identities=identities, context=context)
    )
    assert isinstance(event, Received)
    assert event.contacts[0].name == "Dana Lee"
    assert event.contacts[0].memories == ["prefers mornings"]
    assert event.data.agent_identities[0].agent_handle == "helper"
    assert event.data.context == context


def test_identities_in_camel_case_are_read_too() -> None:
    raw = json.loads(envelope("event_reaction_received"))
    del raw["data"]["agent_identities"]
    raw["data"]["agentIdentities"] = [{"id": "i-2", "agentHandle": "other", "displayName": "O"}]
    event = parse_event(json.dumps(raw))
    assert isinstance(event, ReactionReceived)
    (identity,) = event.data.agent_identities
    assert (identity.agent_handle, identity.display_name) == ("other", "O")


# --- the text limit --------------------------------------------------------------------------


def test_the_text_limit_is_the_plugins() -> None:
    assert MAX_TEXT_LENGTH == 18_995
    assert SendMessage(conversation_id="c", text="x" * 18_995)
    with pytest.raises(ValidationError):
        SendMessage(conversation_id="c", text="x" * 18_996)


async def test_the_client_refuses_a_longer_text_before_sending() -> None:
    client = InkboxClient(api_key="ApiKey_unit", base_url="http://127.0.0.1:9")
    with anyio.fail_after(5), pytest.raises(InvalidRequest, match="text"):
        await client.send_message(conversation_id="c", text="x" * 18_996)
    await client.aclose()


# --- inline replies --------------------------------------------------------------------------


class Recording:
    """The real transport, keeping the bodies of the sends."""

    def __init__(self) -> None:
        self.sends: list[dict[str, Any]] = []
        self._real = AiohttpTransport()

    async def send(self, request: Request) -> Response:
        if request.method == "POST" and request.url.endswith("/imessage/messages"):
            self.sends.append(json.loads(request.body or b"{}"))
        return await self._real.send(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@asynccontextmanager
async def threads_agent() -> AsyncIterator[SimAgent]:
    simulator = local_simulator(connect_event=False)
    async with simulator as sim, sim_agent(sim, "threads") as found:
        yield found


async def test_reply_to_sends_an_inline_reply_with_the_plain_fallback() -> None:
    async with threads_agent() as agent:
        await _replies(agent)


async def _replies(agent: SimAgent) -> None:
    wire = Recording()
    client = InkboxClient(api_key=agent.api_key, base_url=agent.sim.base_url, transport=wire)
    bot = Bot(client=client, signing_key=agent.signing_key)
    earlier: list[Message] = []

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        if not earlier:
            assert ctx.message is not None
            earlier.append(ctx.message)
            return
        await ctx.reply("about that", reply_to=earlier[0])
        await ctx.reply("and this", thread=True)

    with anyio.fail_after(20):
        async with serving(agent, bot):
            await agent.connect(HUMAN)
            await agent.text(HUMAN, "first")
            await eventually(lambda: _copy(earlier), lambda e: len(e) == 1)
            await agent.text(HUMAN, "second")
            await eventually(lambda: bot_texts(agent), lambda t: len(t) == 2)
        sent = await agent.outbound()
    await client.aclose()
    await wire.aclose()
    first = earlier[0].id
    about, this = wire.sends
    assert about["reply_to_message_id"] == first
    assert about["plain_reply_fallback"] is True
    assert this["plain_reply_fallback"] is True
    assert this["reply_to_message_id"] not in (None, first)  # the trigger: "second"
    assert [m.reply_to_message_id for m in sent] == [first, this["reply_to_message_id"]]


async def test_reply_to_and_thread_together_are_refused() -> None:
    ctx: Context[Any] = Context(cast(Any, None), message_event("hi"))
    with anyio.fail_after(5), pytest.raises(InvalidRequest, match="not both"):
        await ctx.reply("x", reply_to="m-1", thread=True)


async def _copy(items: list[Message]) -> list[Message]:
    return list(items)
