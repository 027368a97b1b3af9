"""The official ``inkbox`` SDK (0.7.20) pointed at the simulator: every method of its
``imessages`` and ``imessage_contact_rules`` resources runs and its parsers accept every
answer; simulator webhooks pass ``inkbox.verify_webhook``.

The SDK is synchronous (httpx); it runs in a worker thread while the test's event loop
serves the webhook receiver, and the simulator runs on its own loop (see conftest).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import anyio
import inkbox
import pytest
from inkbox import Inkbox
from inkbox.exceptions import (
    DedicatedIMessageNumberQuotaExceededError,
    DuplicateContactRuleError,
    IdempotencyKeyReusedError,
    InkboxAPIError,
    RecipientBlockedError,
)
from inkbox.imessage.types import (
    IMessage,
    IMessageConversation,
    IMessageConversationSummary,
    IMessageReaction,
)
from support.simapi import PHONE, PHONE_2, Api, Receiver, SimHandle, wait_until

from imbot.events import EVENT_TYPES

T = TypeVar("T")


async def sdk(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


@pytest.fixture
def client(sim: SimHandle) -> Iterator[Inkbox]:
    with Inkbox(api_key=sim.admin_key, base_url=sim.base_url, timeout=10.0) as inkbox_client:
        yield inkbox_client


async def test_imessages_resource_end_to_end(
    sim: SimHandle, client: Inkbox, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(30):
        api = Api(session, sim.base_url, sim.admin_key)
        identity = await sdk(lambda: client.create_identity("echo", imessage_enabled=True))
        assert identity.agent_handle == "echo"
        triage = await sdk(client.imessages.get_triage_number)
        assert triage.number == sim.triage_number and triage.connect_command.startswith("connect @")
        assert await sdk(client.imessages.list_numbers) == []
        with pytest.raises(DedicatedIMessageNumberQuotaExceededError):
            await sdk(lambda: client.imessages.claim_number(idempotency_key="claim-1"))

        await api.text(PHONE, "connect @echo")
        summaries = await sdk(
            lambda: client.imessages.list_conversations(agent_identity_id=identity.id)
        )
        assert len(summaries) == 1 and isinstance(summaries[0], IMessageConversationSummary)
        conv_id = summaries[0].id
        assert summaries[0].unread_count == 1
        conversation = await sdk(lambda: client.imessages.get_conversation(conv_id))
        assert (
            isinstance(conversation, IMessageConversation) and conversation.remote_number == PHONE
        )
        assignments = await sdk(
            lambda: client.imessages.list_assignments(agent_identity_id=identity.id)
        )
        assert [a.remote_number for a in assignments] == [PHONE]

        upload = await sdk(
            lambda: client.imessages.upload_media(
                content=b"\x89PNG....", filename="a.png", content_type="image/png"
            )
        )
        assert upload.media_url.startswith(sim.base_url) and upload.size == 8
        sent = await sdk(
            lambda: client.imessages.send(
                conversation_id=conv_id,
                text="hello",
                media_urls=[upload.media_url],
                send_style="confetti",
            )
        )
        assert isinstance(sent, IMessage) and sent.status is not None
        by_to = await sdk(
            lambda: client.imessages.send(to=PHONE, text="by number", agent_identity_id=identity.id)
        )
        assert by_to.conversation_id == conv_id
        again = await sdk(
            lambda: client.imessages.send(
                conversation_id=conv_id, text="once", idempotency_key="k-1"
            )
        )
        replay = await sdk(
            lambda: client.imessages.send(
                conversation_id=conv_id, text="once", idempotency_key="k-1"
            )
        )
        assert replay.id == again.id
        with pytest.raises(IdempotencyKeyReusedError):
            await sdk(
                lambda: client.imessages.send(
                    conversation_id=conv_id, text="other", idempotency_key="k-1"
                )
            )
        lookup = await sdk(
            lambda: client.message_sends.lookup(
                sender_kind="imessage_identity",
                sender_id=identity.id,
                operation="imessage.send",
                idempotency_key="k-1",
            )
        )
        assert lookup == again.id

        messages = await sdk(lambda: client.imessages.list(conversation_id=conv_id, limit=10))
        assert [m.content for m in messages][:3] == ["once", "by number", "hello"]
        fetched = await sdk(lambda: client.imessages.get(sent.id))
        assert fetched.media and fetched.media[0].content_type == "image/png"
        inbound = messages[-1]
        assert inbound.direction == "inbound"

        reaction = await sdk(
            lambda: client.imessages.send_reaction(message_id=inbound.id, reaction="eyes")
        )
        assert isinstance(reaction, IMessageReaction) and reaction.reaction == "eyes"
        with_reaction = await sdk(lambda: client.imessages.get(inbound.id))
        assert with_reaction.reactions and with_reaction.reactions[0].id == reaction.id
        await sdk(lambda: client.imessages.remove_reaction(reaction.id))
        assert (await sdk(lambda: client.imessages.get(inbound.id))).reactions is None

        reply = await sdk(
            lambda: client.imessages.send(
                conversation_id=conv_id, text="threaded", reply_to_message_id=inbound.id
            )
        )
        thread = await sdk(lambda: client.imessages.get_thread(inbound.id))
        assert [m.id for m in thread.messages] == [inbound.id, reply.id]
        assert reply.thread_id is not None
        by_thread = await sdk(
            lambda: client.imessages.get_conversation_thread(conv_id, reply.thread_id)
        )
        assert by_thread.thread_id == reply.thread_id
        threaded = await sdk(
            lambda: client.imessages.list(conversation_id=conv_id, thread_id=reply.thread_id)
        )
        assert len(threaded) == 2

        await sdk(lambda: client.imessages.send_typing(conv_id))
        read = await sdk(lambda: client.imessages.mark_conversation_read(conv_id))
        assert read.conversation_id == conv_id and read.updated_count == 1

        await sdk(lambda: client.imessages.release_assignment(assignments[0].id))
        assert await sdk(client.imessages.list_assignments) == []
        with pytest.raises(InkboxAPIError) as released:
            await sdk(lambda: client.imessages.send(conversation_id=conv_id, text="gone"))
        assert released.value.status_code == 409

        with pytest.raises(InkboxAPIError) as cold:
            await sdk(
                lambda: client.imessages.send(
                    to=PHONE_2, text="cold", agent_identity_id=identity.id
                )
            )
        assert cold.value.status_code == 404
        assert isinstance(cold.value.detail, dict) and cold.value.detail["error"] == "no_assignment"


async def test_contact_rules_resource(
    sim: SimHandle, client: Inkbox, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(30):
        api = Api(session, sim.base_url, sim.admin_key)
        identity = await sdk(lambda: client.create_identity("echo", imessage_enabled=True))
        rules = client.imessage_contact_rules
        created = await sdk(lambda: rules.create("echo", action="block", match_target=PHONE_2))
        assert created.match_target == PHONE_2 and created.direction == "both"
        with pytest.raises(DuplicateContactRuleError):
            await sdk(lambda: rules.create("@echo", action="allow", match_target=PHONE_2))
        inbound = await sdk(
            lambda: rules.create("echo", action="allow", match_target=PHONE, direction="inbound")
        )
        listed = await sdk(lambda: rules.list("echo", limit=10, offset=0))
        assert [r.id for r in listed] == [inbound.id, created.id]
        assert [r.id for r in await sdk(lambda: rules.list("echo", action="block"))] == [created.id]
        assert len(await sdk(lambda: rules.list("echo", direction="outbound"))) == 1
        got = await sdk(lambda: rules.get("echo", created.id))
        assert got.id == created.id
        paused = await sdk(lambda: rules.update("echo", created.id, action="allow"))
        assert paused.action == "allow"
        moved = await sdk(lambda: rules.update("echo", created.id, direction="outbound"))
        assert moved.direction == "outbound"
        split = await sdk(
            lambda: rules.update("echo", inbound.id, action="block", apply_to="inbound")
        )
        assert split.action == "block"
        everyone = await sdk(
            lambda: rules.list_all(agent_identity_id=identity.id, match_type="exact_number")
        )
        assert {r.id for r in everyone} == {created.id, inbound.id}
        await sdk(lambda: rules.delete("echo", created.id))
        assert [r.id for r in await sdk(lambda: rules.list("echo"))] == [inbound.id]

        # A blocked recipient surfaces as the SDK's typed error.
        await api.text(PHONE_2, "connect @echo")
        conv = (await api.get("/api/v1/imessage/conversations")).body[0]["id"]
        await sdk(lambda: rules.create("echo", action="block", match_target=PHONE_2))
        with pytest.raises(RecipientBlockedError):
            await sdk(lambda: client.imessages.send(conversation_id=conv, text="x"))


async def test_identities_keys_and_whoami(sim: SimHandle, client: Inkbox) -> None:
    with anyio.fail_after(30):
        await sdk(lambda: client.create_identity("echo"))
        updated = await sdk(
            lambda: client.identities.update(
                "echo", imessage_enabled=True, imessage_filter_mode="whitelist"
            )
        )
        assert updated.imessage_enabled is True and updated.imessage_filter_mode == "whitelist"
        listed = await sdk(client.list_identities)
        assert [i.agent_handle for i in listed] == ["echo"]
        got = await sdk(lambda: client.get_identity("echo"))
        assert got.agent_handle == "echo"
        key = await sdk(lambda: client.signing_keys.create_or_rotate("echo"))
        assert key.signing_key.startswith("whsec_")
        status = await sdk(lambda: client.signing_keys.get_status("echo"))
        assert status.configured is True
        me = await sdk(client.whoami)
        assert me.auth_type == "api_key" and me.auth_subtype == "api_key.admin_scoped"
        with (
            Inkbox(api_key="ApiKey_nope", base_url=sim.base_url) as bad,
            pytest.raises(InkboxAPIError) as denied,
        ):
            await sdk(bad.whoami)
        assert denied.value.status_code == 401


async def test_webhooks_pass_verify_webhook(
    sim: SimHandle, client: Inkbox, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with anyio.fail_after(30):
        api = Api(session, sim.base_url, sim.admin_key)
        identity = await sdk(lambda: client.create_identity("echo", imessage_enabled=True))
        sub = await sdk(
            lambda: client.webhooks.subscriptions.create(
                agent_identity_id=identity.id,
                url=receiver.url,
                event_types=["imessage.received", "imessage.sent", "imessage.delivered"],
            )
        )
        assert sub.signing_key and sub.signing_key.startswith("whsec_")
        listed = await sdk(
            lambda: client.webhooks.subscriptions.list(agent_identity_id=identity.id)
        )
        assert [s.id for s in listed] == [sub.id]
        await api.text(PHONE, "connect @echo")
        conv = (await api.get("/api/v1/imessage/conversations")).body[0]["id"]
        await sdk(lambda: client.imessages.send(conversation_id=conv, text="signed"))
        await receiver.wait_for(3)
        for captured in receiver.requests:
            assert inkbox.verify_webhook(
                payload=captured.body, headers=captured.headers, secret=sub.signing_key
            )
            assert not inkbox.verify_webhook(
                payload=captured.body + b" ", headers=captured.headers, secret=sub.signing_key
            )

        async def logged() -> list[Any] | None:
            rows = await sdk(lambda: client.webhooks.deliveries.list(subscription_id=sub.id))
            return rows if len(rows) == 3 else None

        deliveries = await wait_until(logged)
        assert all(d.response_status == 200 for d in deliveries)
        replayed = await sdk(lambda: client.webhooks.deliveries.replay(deliveries[0].id))
        assert replayed.is_replay is True and replayed.event_id == deliveries[0].event_id
        updated = await sdk(lambda: client.webhooks.subscriptions.update(sub.id, auth_token="t"))
        assert updated.has_auth_token is True
        await sdk(lambda: client.webhooks.subscriptions.delete(sub.id))
        assert await sdk(client.webhooks.subscriptions.list) == []
        assert uuid.UUID(str(identity.id))


async def test_subscriptions_refuse_unknown_event_types(
    sim: SimHandle, client: Inkbox, receiver: Receiver
) -> None:
    # Issue 13, fixes 1 and 2: the SDK checks only the "imessage." prefix and leaves exact
    # names to the API, so the simulator must refuse a name it never fires.
    with anyio.fail_after(30):
        identity = await sdk(lambda: client.create_identity("echo", imessage_enabled=True))
        subscriptions = client.webhooks.subscriptions
        with pytest.raises(InkboxAPIError) as refused:
            await sdk(
                lambda: subscriptions.create(
                    agent_identity_id=identity.id,
                    url=receiver.url,
                    event_types=["imessage.received", "imessage.bogus"],
                )
            )
        assert refused.value.status_code == 422
        assert "imessage.bogus" in str(refused.value)
        assert await sdk(subscriptions.list) == []

        sub = await sdk(
            lambda: subscriptions.create(
                agent_identity_id=identity.id, url=receiver.url, event_types=["imessage.sent"]
            )
        )
        for names in (["imessage.nope"], ["imessage.received", "imessage.nope"]):
            with pytest.raises(InkboxAPIError) as refused:
                await sdk(lambda names=names: subscriptions.update(sub.id, event_types=names))
            assert refused.value.status_code == 422
        assert (await sdk(lambda: subscriptions.get(sub.id))).event_types == ["imessage.sent"]
        # Every name the simulator fires is accepted.
        updated = await sdk(lambda: subscriptions.update(sub.id, event_types=list(EVENT_TYPES)))
        assert updated.event_types == list(EVENT_TYPES)


async def test_delivery_request_payload_is_the_raw_signed_body(
    sim: SimHandle, client: Inkbox, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    # Issue 13, fix 3: the SDK types request_payload as the raw body that was delivered,
    # so that it can be verified again; it verifies with the signing key of its time.
    with anyio.fail_after(30):
        api = Api(session, sim.base_url, sim.admin_key)
        identity = await sdk(lambda: client.create_identity("echo", imessage_enabled=True))
        sub = await sdk(
            lambda: client.webhooks.subscriptions.create(
                agent_identity_id=identity.id,
                url=receiver.url,
                event_types=["imessage.received"],
            )
        )
        first_key = sub.signing_key
        assert first_key
        await api.text(PHONE, "connect @echo")
        await api.text(PHONE, "before rotation")
        await wait_until(lambda: _arrived(receiver, "before rotation"))
        before = len(receiver.requests)
        second_key = (await sdk(lambda: client.signing_keys.create_or_rotate("echo"))).signing_key
        await api.text(PHONE, "caf\u00e9 \U0001f600 after rotation")  # non-ASCII: exact bytes
        await wait_until(lambda: _arrived(receiver, "caf\u00e9 \U0001f600 after rotation"))
        captured = {c.json["id"]: c for c in receiver.requests}
        key_of = {
            c.json["id"]: first_key if i < before else second_key
            for i, c in enumerate(receiver.requests)
        }

        async def logged() -> list[Any] | None:
            rows = await sdk(lambda: client.webhooks.deliveries.list(subscription_id=sub.id))
            return rows if len(rows) == len(captured) else None

        deliveries = await wait_until(logged)
        for delivery in deliveries:
            payload = delivery.request_payload
            assert isinstance(payload, str)
            sent = captured[delivery.event_id]
            assert payload.encode() == sent.body
            assert inkbox.verify_webhook(
                payload=payload.encode(), headers=sent.headers, secret=key_of[delivery.event_id]
            )
            other = first_key if key_of[delivery.event_id] == second_key else second_key
            assert not inkbox.verify_webhook(
                payload=payload.encode(), headers=sent.headers, secret=other
            )


async def _arrived(receiver: Receiver, text: str) -> bool:
    return any(e["data"]["message"]["content"] == text for e in receiver.events())
