"""Parts of the wire Inkbox's own agent plugin and SDK show (issue 13): the agent's own
tapbacks echoed back, contacts and agent identities in envelopes, SMS downgrades and
declined sends, and the headers of the send path. The official SDK parses each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest
from inkbox import Inkbox
from inkbox.imessage.types import (
    IMessage,
    IMessageDeliveryStatus,
    IMessageReaction,
    IMessageService,
)
from inkbox.webhooks import WebhookAgentIdentity, WebhookContact
from support.simapi import PHONE, PHONE_2, Api, Receiver, SimFactory, subscribe, wait_until

from imbot.events import MessageReceived, MessageSent, ReactionReceived, parse_event
from imbot.models import DeliveryStatus, Message

MSGS = "/api/v1/imessage/messages"
REACT = "/api/v1/imessage/reactions"


async def sdk(call: Any) -> Any:
    return await anyio.to_thread.run_sync(call)


@pytest.fixture
def client(make_sim: SimFactory) -> Iterator[tuple[Any, Inkbox]]:
    sim = make_sim(sms_numbers=[PHONE], declining_numbers=[PHONE_2], send_cap=2)
    with Inkbox(api_key=sim.admin_key, base_url=sim.base_url, timeout=10.0) as inkbox_client:
        yield sim, inkbox_client


def _shape_ok(item: dict[str, Any], typed: Any) -> bool:
    """Whether ``item`` has the keys the SDK's TypedDict declares (required and optional)."""
    keys = set(item)
    return typed.__required_keys__ <= keys <= typed.__required_keys__ | typed.__optional_keys__


async def test_the_agents_own_tapback_comes_back_outbound(api: Api, receiver: Receiver) -> None:
    with anyio.fail_after(10):
        identity = await api.identity()
        await subscribe(api, identity["id"], receiver.url, ["imessage.reaction_received"])
        conversation = await api.connect(PHONE)
        inbound = (await api.get(MSGS, params={"conversation_id": conversation})).body[0]
        sent = await api.post(REACT, {"message_id": inbound["id"], "reaction": "love"})
        assert sent.status == 201
        [event] = await receiver.wait_for(1, "imessage.reaction_received")
        echoed = event["data"]["reaction"]
        assert event["data"]["message"] is None
        assert echoed["direction"] == "outbound" and echoed["id"] == sent.body["id"]
        assert echoed["reaction"] == "love" and echoed["target_message_id"] == inbound["id"]
        # Both parsers take it; a bot's tapback handler must look at the direction.
        assert IMessageReaction._from_dict(echoed).direction == "outbound"
        parsed = parse_event(receiver.requests[0].body)
        assert isinstance(parsed, ReactionReceived)
        assert parsed.reaction.direction == "outbound"
        # The human's tapback on the agent's message still comes in as inbound.
        reply = (await api.send(conversation, "hi")).body["message"]
        await wait_until(
            lambda: _status_is(api, reply["id"], "delivered"),
        )
        mine = await api.post(
            f"/sim/v1/phones/{PHONE}/reactions", {"message_id": reply["id"], "reaction": "like"}
        )
        assert mine.status == 201
        events = await receiver.wait_for(2, "imessage.reaction_received")
        assert [e["data"]["reaction"]["direction"] for e in events] == ["outbound", "inbound"]


async def _status_is(api: Api, message_id: str, status: str) -> bool:
    return bool((await api.message(message_id))["status"] == status)


async def test_envelopes_name_a_known_contact_and_an_agent_identity(
    api: Api, receiver: Receiver
) -> None:
    with anyio.fail_after(10):
        echo = await api.identity()
        helper = (
            await api.post(
                "/api/v1/identities",
                {"agent_handle": "helper", "display_name": "Helper Bot", "imessage_enabled": True},
            )
        ).body
        await subscribe(api, echo["id"], receiver.url, ["imessage.received"])
        card = await api.put(
            f"/sim/v1/phones/{PHONE}", {"name": "Dana Lee", "memories": ["prefers mornings"]}
        )
        assert card.status == 200
        assert card.body["name"] == "Dana Lee" and card.body["memories"] == ["prefers mornings"]
        assert card.body["unreachable"] is False and card.body["delivery"] == "imessage"
        contact_id = card.body["contact_id"]
        assert contact_id
        # A later change keeps the contact's id; a phone may stand for another agent.
        renamed = await api.put(f"/sim/v1/phones/{PHONE}", {"name": "Dana"})
        assert renamed.body["contact_id"] == contact_id
        assert renamed.body["memories"] == ["prefers mornings"]
        bot = await api.put(f"/sim/v1/phones/{PHONE_2}", {"agent_handle": "@helper"})
        assert bot.status == 200 and bot.body["agent_handle"] == "helper"
        missing = await api.put(f"/sim/v1/phones/{PHONE_2}", {"agent_handle": "ghost"})
        assert missing.status == 404
        await api.connect(PHONE)
        await api.connect(PHONE_2)
        events = await receiver.wait_for(2, "imessage.received")
        by_number = {e["data"]["message"]["remote_number"]: e["data"] for e in events}
        known, agent = by_number[PHONE], by_number[PHONE_2]
        assert known["contacts"] == [
            {"id": contact_id, "name": "Dana", "memories": ["prefers mornings"]}
        ]
        assert known["agent_identities"] == []
        assert agent["contacts"] == []
        assert agent["agent_identities"] == [
            {"id": helper["id"], "agent_handle": "helper", "display_name": "Helper Bot"}
        ]
        # The SDK's declared shapes, and imbot's parser.
        assert _shape_ok(known["contacts"][0], WebhookContact)
        assert _shape_ok(agent["agent_identities"][0], WebhookAgentIdentity)
        for captured in receiver.requests:
            parsed = parse_event(captured.body)
            assert isinstance(parsed, MessageReceived)
            if parsed.message.remote_number == PHONE:
                assert [(c.id, c.name) for c in parsed.data.contacts] == [(contact_id, "Dana")]
            else:
                assert [i.agent_handle for i in parsed.data.agent_identities] == ["helper"]


async def test_sms_downgrade_and_declined_are_produced_and_parse(
    client: tuple[Any, Inkbox], session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim, inkbox_client = client
    with anyio.fail_after(15):
        api = Api(session, sim.base_url, sim.admin_key)
        identity = await api.identity()
        await subscribe(api, identity["id"], receiver.url)
        sms_conv = await api.connect(PHONE)
        declined_conv = await api.connect(PHONE_2)
        sms = (await api.send(sms_conv, "by sms")).body["message"]
        declined = (await api.send(declined_conv, "no thanks")).body["message"]
        [failed] = await receiver.wait_for(1, "imessage.delivery_failed")
        assert failed["data"]["message"]["id"] == declined["id"]
        assert failed["data"]["message"]["status"] == "declined"
        assert failed["data"]["message"]["delivery_final"] is True
        [sent] = await receiver.wait_for(1, "imessage.sent")
        downgraded = sent["data"]["message"]
        assert downgraded["id"] == sms["id"] and downgraded["service"] == "sms"
        assert downgraded["was_downgraded"] is True and downgraded["delivery_final"] is True
        assert downgraded["recipients"][0]["service"] == "sms"
        await wait_until(lambda: _quiet(sim))  # `sent` is final: nothing left in flight
        await anyio.sleep(0.1)
        assert receiver.events("imessage.delivered") == []
        # The SDK parses both, through its own calls.
        got = await sdk(lambda: inkbox_client.imessages.get(sms["id"]))
        assert isinstance(got, IMessage) and got.was_downgraded is True
        assert got.service == IMessageService.SMS and got.status == IMessageDeliveryStatus.SENT
        got = await sdk(lambda: inkbox_client.imessages.get(declined["id"]))
        assert got.status == IMessageDeliveryStatus.DECLINED
        # And imbot's models call them final.
        assert Message.model_validate(downgraded).final
        assert Message.model_validate(failed["data"]["message"]).status == DeliveryStatus.DECLINED
        sent_bodies = [c.body for c in receiver.requests if c.json["event_type"] == "imessage.sent"]
        sent_event = parse_event(sent_bodies[0])
        assert isinstance(sent_event, MessageSent) and sent_event.message.final
        # The phone shows the SMS as arrived and the declined text as failed.
        shown = {}
        for number in (PHONE, PHONE_2):
            items = (await api.get(f"/sim/v1/phones/{number}/timeline")).body["items"]
            shown.update({i["id"]: i["status"] for i in items})
        assert shown[sms["id"]] == "delivered" and shown[declined["id"]] == "failed"
        # A phone can switch transport at run time.
        back = await api.put(f"/sim/v1/phones/{PHONE}", {"delivery": "imessage"})
        assert back.body["delivery"] == "imessage"


async def _quiet(sim: Any) -> bool:
    return bool(sim.pending() == 0)


async def test_short_honest_retry_after_notices_and_replayed(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(15):
        sim = make_sim(send_cap=2, send_cap_window=1.5)
        api = Api(session, sim.base_url, sim.admin_key)
        await api.identity()
        conversation = await api.connect(PHONE)
        key = {"Idempotency-Key": "once"}
        first = await api.post(MSGS, {"conversation_id": conversation, "text": "a"}, headers=key)
        assert first.status == 201 and "Idempotent-Replayed" not in first.headers
        assert "Inkbox-Notices" not in first.headers  # 1 of 2 left: not yet
        again = await api.post(MSGS, {"conversation_id": conversation, "text": "a"}, headers=key)
        assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.body == first.body
        last = await api.send(conversation, "b")
        assert last.status == 201
        notices = last.headers["Inkbox-Notices"]
        assert '"code":"send_cap_near"' in notices and '"level":"warning"' in notices
        refused = await api.send(conversation, "c")
        assert refused.status == 429
        retry_after = int(refused.headers["Retry-After"])
        # Seconds until the oldest send leaves the window: short here, not a day.
        assert 1 <= retry_after <= 2
        assert refused.body["detail"]["retry_after_seconds"] == retry_after
        await anyio.sleep(retry_after)
        assert (await api.send(conversation, "c")).status == 201


async def test_the_sdk_reads_inkbox_notices(client: tuple[Any, Inkbox]) -> None:
    sim, inkbox_client = client
    with anyio.fail_after(15):
        await sdk(lambda: inkbox_client.create_identity("echo", imessage_enabled=True))
        async with aiohttp.ClientSession() as session:
            api = Api(session, sim.base_url, sim.admin_key)
            await api.text("+15555550177", "connect @echo")
            conversation = await api.connect("+15555550177")
        first = await sdk(
            lambda: inkbox_client.with_response_metadata(
                lambda c: c.imessages.send(conversation_id=conversation, text="one")
            )
        )
        assert first.notices is None
        second = await sdk(
            lambda: inkbox_client.with_response_metadata(
                lambda c: c.imessages.send(conversation_id=conversation, text="two")
            )
        )
        assert [n.code for n in second.notices or ()] == ["send_cap_near"]
        assert "0 more of its 2 messages" in second.notices[0].message
