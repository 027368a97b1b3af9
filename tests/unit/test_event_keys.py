"""What the inbox dedupes on and what sends are keyed by: the message or tapback, by type.

``event_key`` is ``<event type>:<message or reaction id>``; an event without either keeps
its envelope id. The envelope id is still a duplicate within a process, and an event kept
under an older key (an older imbot stored pending events under the envelope id) completes
under that key.
"""

from __future__ import annotations

import pathlib

import anyio

from imbot import Bot, Context, MessageReceived
from imbot.bot.inbox import event_key, open_inbox
from imbot.bot.sending import idempotency_key
from imbot.events import AnyEvent
from imbot.testing import message_event, offline_client, reaction_event, run_events
from imbot.testing.events import unknown_event


def test_the_key_names_the_type_and_what_the_event_is_about() -> None:
    received = message_event("hi", message_id="m-1", event_id="evt_a")
    assert event_key(received) == "imessage.received:m-1"
    # sent, delivered and delivery_failed share the outbound message's id: the type tells.
    keys = {
        event_key(message_event("x", event_type=kind, message_id="m-2"))
        for kind in ("imessage.sent", "imessage.delivered", "imessage.delivery_failed")
    }
    assert keys == {
        "imessage.sent:m-2",
        "imessage.delivered:m-2",
        "imessage.delivery_failed:m-2",
    }
    tapback = reaction_event("love")
    assert event_key(tapback) == f"imessage.reaction_received:{tapback.reaction.id}"
    assert event_key(unknown_event(event_id="evt_new_kind")) == "evt_new_kind"


def test_reply_keys_come_from_the_message_not_the_envelope() -> None:
    first = message_event("hi", message_id="m-9", event_id="evt_1")
    again = first.model_copy(update={"id": "evt_2"})  # the same message, a new envelope
    assert idempotency_key(event_key(first), 1) == idempotency_key(event_key(again), 1)
    assert idempotency_key(event_key(first), 1) == "imbot:imessage.received:m-9:1"


async def test_a_new_envelope_for_the_same_message_is_a_duplicate() -> None:
    bot = Bot(client=offline_client())
    seen: list[str] = []

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.event.id)

    first = message_event("hi", message_id="m-1", event_id="evt_1")
    again = first.model_copy(update={"id": "evt_2"})
    assert await run_events(bot, first, again) == [True, False]
    assert seen == ["evt_1"]


async def test_the_receipts_of_one_message_are_three_events() -> None:
    bot = Bot(client=offline_client())
    seen: list[str] = []

    @bot.on_event("imessage.*")
    async def handler(ctx: Context[AnyEvent]) -> None:
        seen.append(ctx.event.event_type)

    events = [
        message_event("x", event_type=kind, message_id="m-out")
        for kind in ("imessage.sent", "imessage.delivered", "imessage.sent")
    ]
    assert await run_events(bot, *events) == [True, True, False]
    assert seen == ["imessage.sent", "imessage.delivered"]


async def test_a_pending_event_stored_under_its_envelope_id_completes_after_an_upgrade(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    event = message_event("from before the upgrade", message_id="m-old", event_id="evt_old")
    raw = event.model_dump_json(exclude_unset=True).encode()
    older = open_inbox(url)  # what an older imbot did: keep it under the envelope id
    with anyio.fail_after(10):
        assert await older.accept("evt_old", raw)
        await older.close()

    bot = Bot(client=offline_client(), inbox=url)
    seen: list[str] = []

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.text)

    with anyio.fail_after(10):
        async with bot:
            # Redelivered meanwhile, in its envelope or in a new one: already being handled.
            assert not await bot.feed(event)
            assert not await bot.feed(event.model_copy(update={"id": "evt_retry"}))
    assert seen == ["from before the upgrade"]
    reopened = open_inbox(url)
    with anyio.fail_after(10):
        assert await reopened.pending() == []  # completed under the key it was stored with
        await reopened.close()
