"""The context: properties per event type, helpers against the real simulator, exactly-once."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog
from support import snapshot

from imbot import AskTimeout, Bot, Context, MessageReceived, SkipHandler
from imbot.bot.asks import AskRegistry
from imbot.bot.sending import idempotency_key
from imbot.bot.services import Services
from imbot.bot.typing import Typing
from imbot.errors import ImbotError
from imbot.events import AnyEvent, MessageSent, parse_event
from imbot.models import Message
from imbot.storage.base import StateStore
from imbot.storage.memory import MemoryStateStore
from imbot.testing import eventually, serving, simulated
from imbot.testing.events import CONVERSATION_ID as CONVO
from imbot.testing.events import PHONE as HUMAN
from imbot.testing.events import (
    message_dict,
    message_event,
    offline_client,
    reaction_event,
    unknown_event,
)

PHONE = "+15555550142"


def ctx_for(event: AnyEvent, store: StateStore | None = None) -> Context[Any]:
    client = offline_client()
    services = Services(
        bot=Bot(client=client),
        client=client,
        state_store=store or MemoryStateStore(),
        asks=AskRegistry(),
        typing_interval=40.0,
    )
    return Context(services, event)


# --------------------------------------------------------------------------- offline


def test_message_event_properties() -> None:
    event = message_event("Hi there", sender=PHONE, message_id="m-1")
    ctx = ctx_for(event)
    assert ctx.event is event
    assert ctx.message is not None and ctx.message.id == "m-1"
    assert ctx.reaction is None
    assert ctx.text == "Hi there"
    assert ctx.sender == PHONE
    assert ctx.conversation_id == CONVO
    assert ctx.args == {} and ctx.command is None and ctx.match is None
    assert repr(ctx) == f"<Context imessage.received {event.id} conversation='{CONVO}'>"


def test_reaction_event_properties() -> None:
    ctx = ctx_for(reaction_event("laugh", sender=PHONE, target="m-9"))
    assert ctx.message is None
    assert ctx.reaction is not None and ctx.reaction.reaction == "laugh"
    assert ctx.text == ""
    assert ctx.sender == PHONE
    assert ctx.trigger_message_id() == "m-9"


def test_unknown_event_properties_and_helpers_without_a_conversation() -> None:
    body = b'{"id":"evt_u","event_type":"phone.ring","timestamp":"2026-06-09T14:30:58Z"}'
    ctx = ctx_for(parse_event(body))
    assert (ctx.message, ctx.reaction, ctx.text, ctx.sender, ctx.conversation_id) == (
        None,
        None,
        "",
        "",
        "",
    )
    with pytest.raises(ImbotError, match=r"ctx.reply\(\) needs a conversation"):
        ctx.require_conversation("reply")
    with pytest.raises(ImbotError, match="no message to reply to"):
        ctx.trigger_message_id()
    assert ctx_for(unknown_event()).conversation_id == CONVO


def test_group_messages_name_the_actual_sender() -> None:
    data = message_dict("hi", sender="+15555550001")
    data["sender_number"] = "+15555550002"
    event = MessageReceived.model_validate(
        {
            "id": "evt_g",
            "event_type": "imessage.received",
            "timestamp": "2026-06-09T14:30:58Z",
            "data": {"message": data},
        }
    )
    assert ctx_for(event).sender == "+15555550002"


async def test_state_is_read_on_first_use_and_saved_only_when_changed() -> None:
    store = MemoryStateStore()
    await store.save(CONVO, {"visits": 1})
    ctx = ctx_for(message_event(), store)
    assert ctx.state["visits"] == 1
    await ctx.save_state()  # unchanged: nothing written
    ctx.state["visits"] += 1
    await ctx.save_state()
    assert await store.load(CONVO) == {"visits": 2}
    body = b'{"id":"evt_u","event_type":"phone.ring","timestamp":"2026-06-09T14:30:58Z"}'
    assert ctx_for(parse_event(body), store).state == {}  # names no conversation


def test_skip_raises_the_signal() -> None:
    with pytest.raises(SkipHandler):
        ctx_for(message_event()).skip()


def test_log_is_bound_to_the_event_conversation_and_handler() -> None:
    ctx = ctx_for(message_event(event_id="evt_log"))
    ctx.handler_name = "mod.handler"
    with structlog.testing.capture_logs() as logs:
        ctx.log.info("looked up", order=7)
    assert logs == [
        {
            "event": "looked up",
            "order": 7,
            "event_id": "evt_log",
            "conversation_id": CONVO,
            "handler": "mod.handler",
            "log_level": "info",
        }
    ]
    assert ctx.log is ctx.log  # bound once


def test_idempotency_key_is_derived_from_event_and_ordinal() -> None:
    assert idempotency_key("evt_1", 1) == "imbot:evt_1:1"
    assert idempotency_key("evt_1", 2) != idempotency_key("evt_2", 1)


def test_ask_registry_offers_the_next_message_of_the_same_person_once() -> None:
    asks = AskRegistry()
    assert not asks
    waiter = asks.open(CONVO, HUMAN)
    with pytest.raises(ImbotError, match="already waiting"):
        asks.open(CONVO, HUMAN)
    assert not asks.offer(message_event("other person", sender=PHONE))  # type: ignore[arg-type]
    assert not asks.offer(message_event("echo", direction="outbound"))  # type: ignore[arg-type]
    answer = message_event("yes")
    assert asks.offer(answer)  # type: ignore[arg-type]
    assert waiter.answered.is_set() and waiter.message is not None
    assert waiter.message.content == "yes"
    assert not asks.offer(message_event("again"))  # type: ignore[arg-type]
    asks.close(CONVO, HUMAN, waiter)
    assert len(asks) == 0


def test_typing_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Typing(ctx_for(message_event()).mark_read, 0, active=[])


# --------------------------------------------------------------------------- simulator


async def test_reply_react_mark_read_media_and_thread_against_the_simulator() -> None:
    with anyio.fail_after(30):
        async with simulated() as kit:
            bot = Bot(client=kit.client, signing_key=kit.signing_key)
            results: dict[str, Any] = {}

            @bot.command("connect")
            async def greet(ctx: Context[MessageReceived]) -> None:
                await ctx.reply("welcome")

            @bot.command("all")
            async def everything(ctx: Context[MessageReceived]) -> None:
                results["reply"] = await ctx.reply("threaded", thread=True, effect="confetti")
                results["react"] = await ctx.react("love")
                results["read"] = await ctx.mark_read()
                upload = await ctx.upload(b"\x89PNG fake", filename="dot.png")
                results["upload"] = upload
                await ctx.reply(media=upload)
                await ctx.reply("bytes", media=b"plain bytes")
                await ctx.reply("link", media="https://example.com/cat.jpg")
                results["send"] = await ctx.send("sent via send")
                results["trigger"] = ctx.message

            async with serving(kit, bot):
                await kit.connect(PHONE)
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: "welcome" in t)
                await kit.text(PHONE, "all")
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: "sent via send" in t)
                timeline = await kit.timeline(PHONE)

            trigger = results["trigger"]
            assert results["reply"].reply_to_message_id == trigger.id
            assert results["reply"].send_style == "confetti"
            assert results["react"].target_message_id == trigger.id
            assert results["read"].updated_count >= 1
            assert results["upload"].media_url.startswith(kit.sim.base_url)
            assert results["send"].conversation_id == trigger.conversation_id
            mine = [i for i in timeline["items"] if i["from"] == "me" and i["text"] == "all"]
            assert mine[0]["status"] == "read"
            assert [r["reaction"] for r in mine[0]["reactions"]] == ["love"]
            media = [i for i in timeline["items"] if i["from"] == "them" and i["media"]]
            assert len(media) == 3
            assert media[2]["media"][0]["url"] == "https://example.com/cat.jpg"


async def test_a_replayed_event_sends_nothing_twice() -> None:
    with anyio.fail_after(30):
        async with simulated() as kit:
            bot = Bot(client=kit.client, signing_key=kit.signing_key)
            captured: list[AnyEvent] = []

            @bot.on_message()
            async def two_replies(ctx: Context[MessageReceived]) -> None:
                captured.append(ctx.event)
                await ctx.reply(f"one: {ctx.text}")
                await ctx.reply(f"two: {ctx.text}")

            async with serving(kit, bot):
                await kit.connect(PHONE)
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: len(t) == 2)

            # A second process (say after a crash) handles the same event again.
            again = Bot(client=kit.client)
            again.add_message_handler(two_replies)
            async with again:
                assert await again.feed(captured[0])
            texts = await kit.agent_texts(PHONE)
            assert texts == [f"one: connect @{kit.handle}", f"two: connect @{kit.handle}"]
            assert len(await kit.outbound()) == 2


async def test_typing_shows_at_once_rearms_after_a_reply_and_stops_after() -> None:
    with anyio.fail_after(30):
        async with simulated() as kit:
            bot = Bot(client=kit.client, signing_key=kit.signing_key, typing_interval=0.4)
            replied, release, finish = anyio.Event(), anyio.Event(), anyio.Event()

            @bot.command("work")
            async def work(ctx: Context[MessageReceived]) -> None:
                async with ctx.typing():
                    replied.set()
                    await release.wait()
                    await ctx.reply("halfway")
                    await finish.wait()
                await ctx.reply("done")

            @bot.on_message()
            async def ignore(ctx: Context[MessageReceived]) -> None:
                pass

            async with serving(kit, bot):
                await kit.connect(PHONE)
                await kit.text(PHONE, "work")
                with anyio.fail_after(5):
                    await replied.wait()
                assert await eventually(lambda: kit.typing(PHONE), bool)
                release.set()
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: "halfway" in t)
                # The message cleared the bubble; the block shows it again.
                assert await eventually(lambda: kit.typing(PHONE), bool)
                finish.set()
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: "done" in t)
                assert not await kit.typing(PHONE)


async def test_ask_returns_the_answer_which_no_other_handler_sees_and_times_out() -> None:
    with anyio.fail_after(30):
        async with simulated() as kit:
            bot = Bot(client=kit.client, signing_key=kit.signing_key)
            others: list[str] = []

            @bot.command("quiz")
            async def quiz(ctx: Context[MessageReceived]) -> None:
                ctx.state["started"] = True
                answer: Message = await ctx.ask("Capital of France?")
                await ctx.reply(f"You said {answer.text}")
                try:
                    await ctx.ask("Anything else?", timeout=0.3)
                except AskTimeout as exc:
                    await ctx.reply(f"timed out after {exc.timeout:g} s")

            @bot.on_message()
            async def other(ctx: Context[MessageReceived]) -> None:
                others.append(ctx.text)

            async with serving(kit, bot):
                await kit.connect(PHONE)
                await kit.text(PHONE, "quiz")
                question = "Capital of France?"
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: question in t)
                await kit.text(PHONE, "Paris")
                texts = await eventually(
                    lambda: kit.agent_texts(PHONE), lambda t: "timed out after 0.3 s" in t
                )
            assert texts[-3:] == ["You said Paris", "Anything else?", "timed out after 0.3 s"]
            assert others == [f"connect @{kit.handle}"]


async def test_send_outside_handlers_and_sent_events_reach_on_sent() -> None:
    with anyio.fail_after(30):
        async with simulated() as kit:
            bot = Bot(client=kit.client, signing_key=kit.signing_key)
            conversations: list[str] = []
            sent: list[str] = []

            @bot.on_message()
            async def remember(ctx: Context[MessageReceived]) -> None:
                conversations.append(ctx.conversation_id)

            @bot.on_sent
            async def on_sent(ctx: Context[MessageSent]) -> None:
                sent.append(ctx.text)

            async with serving(kit, bot):
                await kit.connect(PHONE)
                await kit.text(PHONE, "hello")
                await eventually(lambda: snapshot(conversations), lambda c: len(c) >= 2)
                await bot.send("proactive", conversation_id=conversations[0])
                await eventually(lambda: kit.agent_texts(PHONE), lambda t: "proactive" in t)
                await eventually(lambda: snapshot(sent), lambda s: s == ["proactive"])
