"""imbot.testing without a simulator: event factories, run_events, tiny_png and eventually."""

from __future__ import annotations

import struct
import zlib

import anyio
import pytest

from imbot import Bot, Context, MessageReceived, ReactionReceived
from imbot.events import (
    DeliveryFailed,
    MessageDelivered,
    MessageSent,
    UnknownEvent,
)
from imbot.testing import (
    eventually,
    message_event,
    offline_client,
    reaction_event,
    run_events,
    tiny_png,
    unknown_event,
)
from imbot.testing.events import CONVERSATION_ID, OTHER_PHONE, PHONE, message_dict


def test_a_message_event_is_a_received_text_from_the_default_human() -> None:
    event = message_event()
    assert isinstance(event, MessageReceived)
    assert event.message.content == "hi" and event.message.direction == "inbound"
    assert (event.remote_number, event.conversation_id) == (PHONE, CONVERSATION_ID)
    other = message_event("yo", sender=OTHER_PHONE, conversation_id="c1", message_id="m-1")
    assert (other.remote_number, other.conversation_id, other.message.id) == (
        OTHER_PHONE,
        "c1",
        "m-1",
    )
    assert other.id != event.id and other.id.startswith("evt_")


def test_message_events_about_the_bots_messages_are_outbound() -> None:
    kinds = {
        "imessage.sent": MessageSent,
        "imessage.delivered": MessageDelivered,
        "imessage.delivery_failed": DeliveryFailed,
    }
    for event_type, kind in kinds.items():
        event = message_event("done", event_type=event_type)  # type: ignore[call-overload]
        assert isinstance(event, kind)
        assert event.message.direction == "outbound" and event.message.status == "sent"
    inbound = message_event("odd", event_type="imessage.sent", direction="inbound")
    assert inbound.message.direction == "inbound"


def test_media_only_messages_and_the_message_dict() -> None:
    event = message_event(None, media=[{"url": "https://example.com/cat.jpg"}])
    assert event.message.content is None
    assert event.message.media is not None and event.message.media[0].url.endswith("cat.jpg")
    data = message_dict("hi", sender="+15550001111")
    assert data["remote_number"] == "+15550001111" and data["status"] == "received"


def test_reaction_and_unknown_events() -> None:
    love = reaction_event(target="m-9", event_id="evt_love")
    assert isinstance(love, ReactionReceived) and love.id == "evt_love"
    assert (love.reaction.reaction, love.reaction.target_message_id) == ("love", "m-9")
    assert love.reaction.custom_emoji is None
    assert reaction_event("custom").reaction.custom_emoji == "🎉"
    assert reaction_event("custom", custom_emoji="🦄").reaction.custom_emoji == "🦄"
    edited = unknown_event()
    assert isinstance(edited, UnknownEvent) and edited.event_type == "imessage.edited"
    assert edited.conversation_id == CONVERSATION_ID
    assert unknown_event("x.y", data={"note": 1}).conversation_id is None


async def test_run_events_feeds_in_order_drops_duplicates_and_waits_for_handlers() -> None:
    bot = Bot(client=offline_client())
    done: list[str] = []

    @bot.on_message()
    async def slow(ctx: Context[MessageReceived]) -> None:
        await anyio.sleep(0.05)
        done.append(ctx.text)

    hi = message_event("hi", event_id="evt_same")
    assert await run_events(bot, hi, message_event("there"), hi) == [True, True, False]
    assert done == ["hi", "there"]


async def test_run_events_has_a_deadline() -> None:
    bot = Bot(client=offline_client(), drain_timeout=0.2)

    @bot.on_message()
    async def stuck(ctx: Context[MessageReceived]) -> None:
        await anyio.sleep(5)

    with anyio.fail_after(5), pytest.raises(TimeoutError, match=r"did not finish within 0\.1 s"):
        await run_events(bot, message_event(), timeout=0.1)


def test_tiny_png_is_a_valid_png() -> None:
    png = tiny_png(3, 2, (0, 0, 0), (255, 255, 255))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    _, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and struct.unpack(">II", png[16:24]) == (3, 2)
    idat = png.index(b"IDAT")
    size = struct.unpack(">I", png[idat - 4 : idat])[0]
    rows = zlib.decompress(png[idat + 4 : idat + 4 + size])
    assert rows == b"\x00" + b"\x00" * 9 + b"\x00" + b"\xff" * 9  # a gradient, top to bottom
    assert len(tiny_png()) < 100
    with pytest.raises(ValueError, match="at least 1"):
        tiny_png(0, 1)
    with pytest.raises(ValueError, match="0 to 255"):
        tiny_png(top=(256, 0, 0))


async def test_eventually_returns_the_accepted_value_or_fails_with_the_last() -> None:
    calls: list[int] = []

    async def count() -> int:
        calls.append(1)
        return len(calls)

    assert await eventually(count, lambda n: n >= 3, interval=0) == 3
    with pytest.raises(AssertionError, match=r"within 0\.05 s; last value: \d+"):
        await eventually(count, lambda n: n < 0, timeout=0.05)
