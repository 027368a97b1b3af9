"""InkboxClient against the real simulator: every endpoint, the human side, typed errors.

The simulator runs on its own thread (see conftest); the human plays through ``/sim/v1``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from support.simapi import PHONE, PHONE_2, Api, SimHandle, wait_until

from imbot.client.client import InkboxClient
from imbot.errors import (
    ConversationInactive,
    DuplicateContactRule,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    NotConnected,
    NotFound,
    RecipientBlocked,
    Unauthorized,
)
from imbot.events import EVENT_TYPES
from imbot.models import (
    AssignmentStatus,
    ContactRuleStatus,
    DeliveryStatus,
    Direction,
    FilterMode,
    Identity,
    RuleAction,
    RuleDirection,
    TapbackKind,
)


@pytest.fixture
async def client(sim: SimHandle) -> AsyncIterator[InkboxClient]:
    async with InkboxClient(api_key=sim.admin_key, base_url=sim.base_url) as c:
        yield c


async def connected(client: InkboxClient, api: Api, phone: str = PHONE) -> tuple[Identity, str]:
    """Create @echo (once), connect ``phone`` and say hello; return the identity and the
    conversation id."""
    try:
        identity = await client.get_identity("echo")
    except NotFound:
        identity = await client.create_identity("echo", imessage_enabled=True)
    r = await api.text(phone, "connect @echo")
    assert r.status == 201, r.body
    r = await api.text(phone, "hi there", to="echo")
    assert r.status == 201, r.body
    convos = [c async for c in client.iter_conversations() if c.remote_number == phone]
    assert len(convos) == 1, convos
    return identity, convos[0].id


async def test_identities_signing_key_and_subscriptions(client: InkboxClient) -> None:
    with anyio.fail_after(20):
        identity = await client.create_identity(
            "@echo", display_name="Echo", description="repeats you", imessage_enabled=True
        )
        assert identity.agent_handle == "echo"
        assert identity.imessage_enabled is True
        assert [i.agent_handle for i in await client.list_identities()] == ["echo"]
        assert (await client.get_identity("@echo")).id == identity.id
        updated = await client.update_identity(
            "echo", filter_mode=FilterMode.WHITELIST, display_name="Echo 2"
        )
        assert updated.imessage_filter_mode is FilterMode.WHITELIST
        assert updated.display_name == "Echo 2"

        assert (await client.get_signing_key_status("echo")).configured is False
        key = await client.create_signing_key("echo")
        assert key.signing_key
        status = await client.get_signing_key_status("echo")
        assert status.configured is True

        sub = await client.create_subscription(
            agent_identity_id=identity.id,
            url="https://bot.example/webhook",
            event_types=EVENT_TYPES,
            auth_token="secret-token",
        )
        assert sub.event_types == list(EVENT_TYPES)
        assert sub.agent_identity_id == identity.id
        listed = await client.list_subscriptions(agent_identity_id=identity.id)
        assert [s.id for s in listed] == [sub.id]
        assert (await client.get_subscription(sub.id)).url == "https://bot.example/webhook"
        changed = await client.update_subscription(
            sub.id, url="https://bot.example/hook2", event_types=["imessage.received"]
        )
        assert changed.url == "https://bot.example/hook2"
        assert changed.event_types == ["imessage.received"]
        await client.delete_subscription(sub.id)
        assert await client.list_subscriptions(agent_identity_id=identity.id) == []
        with pytest.raises(NotFound):
            await client.get_subscription(sub.id)


async def test_triage_connect_and_conversation_reads(
    client: InkboxClient, api: Api, sim: SimHandle
) -> None:
    with anyio.fail_after(20):
        triage = await client.get_triage_number()
        assert triage.number == sim.triage_number
        assert "connect" in triage.connect_command
        identity, conversation_id = await connected(client, api)

        convo = await client.get_conversation(conversation_id, agent_identity_id=identity.id)
        assert convo.remote_number == PHONE
        assert convo.assignment_status is AssignmentStatus.ACTIVE
        (assignment,) = await client.list_assignments()
        assert assignment.remote_number == PHONE
        assert assignment.agent_identity_id == identity.id
        assert [a.id async for a in client.iter_assignments()] == [assignment.id]

        inbound = await client.list_messages(conversation_id=conversation_id)
        assert any(m.text == "hi there" and m.direction is Direction.INBOUND for m in inbound)


async def test_send_list_get_read_typing_and_reactions(client: InkboxClient, api: Api) -> None:
    with anyio.fail_after(20):
        identity, conversation_id = await connected(client, api)
        sent = await client.send_message(
            conversation_id=conversation_id, text="Hello human", send_style="confetti"
        )
        assert sent.direction is Direction.OUTBOUND
        assert sent.content == "Hello human"
        assert sent.status is DeliveryStatus.QUEUED

        by_number = await client.send_message(
            to=PHONE, text="By number", agent_identity_id=identity.id
        )
        assert by_number.conversation_id == conversation_id

        async def delivered() -> bool:
            return (await client.get_message(sent.id)).status is DeliveryStatus.DELIVERED

        await wait_until(delivered)

        walked = [
            m.id async for m in client.iter_messages(conversation_id=conversation_id, page_size=1)
        ]
        listed = [
            m.id for m in await client.list_messages(conversation_id=conversation_id, limit=200)
        ]
        assert walked == listed
        assert {sent.id, by_number.id} <= set(walked)

        unread = await client.list_messages(conversation_id=conversation_id, is_read=False)
        assert any(m.direction is Direction.INBOUND for m in unread)
        result = await client.mark_read(conversation_id)
        assert result.conversation_id == conversation_id
        assert result.updated_count >= 1
        await client.send_typing(conversation_id)

        inbound = next(m for m in unread if m.direction is Direction.INBOUND)
        reaction = await client.send_reaction(inbound.id, TapbackKind.LOVE)
        assert reaction.reaction is TapbackKind.LOVE
        assert reaction.target_message_id == inbound.id
        assert reaction.direction is Direction.OUTBOUND
        with_reaction = await client.get_message(inbound.id)
        assert [r.id for r in with_reaction.reactions or []] == [reaction.id]
        await client.remove_reaction(reaction.id)
        assert not (await client.get_message(inbound.id)).reactions


async def test_idempotent_send_replays_the_same_message(client: InkboxClient, api: Api) -> None:
    with anyio.fail_after(20):
        _, conversation_id = await connected(client, api)
        key = f"reply-{uuid.uuid4()}"
        first = await client.send_message(
            conversation_id=conversation_id, text="once", idempotency_key=key
        )
        again = await client.send_message(
            conversation_id=conversation_id, text="once", idempotency_key=key
        )
        assert again.id == first.id
        outbound = [
            m
            async for m in client.iter_messages(conversation_id=conversation_id)
            if m.direction is Direction.OUTBOUND
        ]
        assert [m.id for m in outbound] == [first.id]
        with pytest.raises(IdempotencyKeyReused) as info:
            await client.send_message(
                conversation_id=conversation_id, text="different", idempotency_key=key
            )
        assert info.value.idempotency_key == key


async def test_media_upload_then_send(client: InkboxClient, api: Api) -> None:
    with anyio.fail_after(20):
        _, conversation_id = await connected(client, api)
        png = b"\x89PNG\r\n\x1a\n" + bytes(2048)
        upload = await client.upload_media(png, filename="pixel.png")
        assert upload.media_url
        assert upload.size == len(png)
        assert upload.content_type == "image/png"
        message = await client.send_message(
            conversation_id=conversation_id, media_urls=[upload.media_url]
        )
        assert message.media is not None
        assert message.media[0].url == upload.media_url


async def test_contact_rules_and_blocked_sends(client: InkboxClient, api: Api) -> None:
    with anyio.fail_after(20):
        identity, conversation_id = await connected(client, api)
        rule = await client.create_contact_rule(
            "@echo", action=RuleAction.BLOCK, match_target=PHONE
        )
        assert rule.action is RuleAction.BLOCK
        assert rule.direction is RuleDirection.BOTH
        assert (await client.get_contact_rule("echo", rule.id)).match_target == PHONE
        assert [r.id for r in await client.list_contact_rules("echo")] == [rule.id]
        assert [r.id async for r in client.iter_contact_rules("echo", action="block")] == [rule.id]
        org = await client.list_all_contact_rules(agent_identity_id=identity.id)
        assert [r.id for r in org] == [rule.id]
        assert [r.id async for r in client.iter_all_contact_rules()] == [rule.id]

        with pytest.raises(RecipientBlocked) as blocked:
            await client.send_message(conversation_id=conversation_id, text="blocked?")
        assert blocked.value.matched_rule_id == rule.id
        assert blocked.value.address == PHONE

        with pytest.raises(DuplicateContactRule) as duplicate:
            await client.create_contact_rule("echo", action="block", match_target=PHONE)
        assert duplicate.value.existing_rule_id == rule.id

        paused = await client.update_contact_rule("echo", rule.id, status=ContactRuleStatus.PAUSED)
        assert paused.status is ContactRuleStatus.PAUSED
        await client.send_message(conversation_id=conversation_id, text="paused rule lets me")

        await client.delete_contact_rule("echo", rule.id)
        assert await client.list_contact_rules("echo") == []
        with pytest.raises(NotFound):
            await client.get_contact_rule("echo", rule.id)


async def test_typed_errors(client: InkboxClient, api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(20):
        identity, conversation_id = await connected(client, api)

        with pytest.raises(NotConnected) as never:
            await client.send_message(to=PHONE_2, text="cold", agent_identity_id=identity.id)
        assert never.value.status == 404
        assert never.value.idempotency_key

        with pytest.raises(NotFound):
            await client.get_message(str(uuid.uuid4()))
        with pytest.raises(InvalidRequest):
            await client.send_reaction(str(uuid.uuid4()), "custom")

        (assignment,) = await client.list_assignments()
        await client.release_assignment(assignment.id)
        with pytest.raises(NotFound):
            await client.release_assignment(assignment.id)
        with pytest.raises(ConversationInactive):
            await client.send_message(conversation_id=conversation_id, text="after release")
        released = await client.get_conversation(conversation_id)
        assert released.assignment_status is AssignmentStatus.RELEASED

        async with InkboxClient(api_key="ApiKey_wrong", base_url=sim.base_url) as stranger:
            with pytest.raises(Unauthorized):
                await stranger.get_triage_number()


async def test_identity_scoped_key(client: InkboxClient, api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(20):
        await client.create_identity("other", imessage_enabled=True)
        _, conversation_id = await connected(client, api)
        scoped_key = await api.key_for("echo")
        async with InkboxClient(api_key=scoped_key, base_url=sim.base_url) as agent:
            assert [i.agent_handle for i in await agent.list_identities()] == ["echo"]
            await agent.send_message(conversation_id=conversation_id, text="as the agent")
            (assignment,) = await agent.list_assignments()
            with pytest.raises(Forbidden):
                await agent.release_assignment(assignment.id)
            with pytest.raises(Forbidden):
                await agent.list_contact_rules("other")
