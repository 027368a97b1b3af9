"""imbot.testing without pytest fixtures: BotHarness and Conversation, end to end.

Each test runs a real simulator and a real bot server on free loopback ports, and is
bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import json
import pathlib
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import anyio
import pytest

import imbot.testing as testing
from imbot import Bot, Context, InkboxClient, MessageReceived, ReactionReceived, SetupError
from imbot.sim import Simulator
from imbot.testing import (
    DEFAULT_TIMEOUT,
    BotHarness,
    Conversation,
    TimelineItem,
    TimelineReaction,
    sim_agent,
)
from imbot.testing.feed import PhoneFeed
from imbot.testing.transcript import render_transcript

LIMIT = 20  # seconds, per test


def make_bot() -> Bot:
    """A bot that exercises every effect the test kit observes."""
    bot = Bot()

    @bot.command("boom")
    async def boom(ctx: Context[MessageReceived]) -> None:
        raise ZeroDivisionError("boom in a handler")

    @bot.command("quiet")
    async def quiet(ctx: Context[MessageReceived]) -> None:
        await ctx.mark_read()

    @bot.command("style")
    async def style(ctx: Context[MessageReceived]) -> None:
        await ctx.reply("party", effect="confetti")

    @bot.command("two")
    async def two(ctx: Context[MessageReceived]) -> None:
        await ctx.reply("first")
        await ctx.reply("second")

    @bot.command("react")
    async def react(ctx: Context[MessageReceived], kind: str) -> None:
        await ctx.react(kind)

    @bot.command("slow")
    async def slow(ctx: Context[MessageReceived], seconds: float) -> None:
        await anyio.sleep(seconds)
        await ctx.reply("finally")

    @bot.on_message()
    async def echo(ctx: Context[MessageReceived]) -> None:
        async with ctx.typing():
            await ctx.reply(f"echo: {ctx.text}")
        await ctx.mark_read()

    @bot.on_tapback
    async def tapped(ctx: Context[ReactionReceived]) -> None:
        assert ctx.reaction is not None
        await ctx.reply(f"you sent {ctx.reaction.reaction}")

    return bot


@pytest.fixture
def bot() -> Bot:
    return make_bot()


@asynccontextmanager
async def running(bot: Bot, **kwargs: Any) -> AsyncIterator[tuple[BotHarness, Conversation]]:
    with anyio.fail_after(LIMIT):
        async with BotHarness(bot, **kwargs) as harness:
            yield harness, harness.chat()


# ---------------------------------------------------------------------------- happy paths


async def test_say_and_expect_reply(bot: Bot) -> None:
    async with running(bot) as (harness, chat):
        mine = await chat.say("hi")
        assert (mine.sender, mine.thread, mine.text) == ("me", "testbot", "hi")
        reply = await chat.expect_reply("echo: hi")
        assert isinstance(reply, TimelineItem)
        assert (reply.sender, reply.status) == ("them", "delivered")
        assert reply.conversation_id == mine.conversation_id
        assert harness.errors == []


async def test_expect_reply_matchers(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        await chat.say("abc 123")
        await chat.expect_reply(regex=r"\d{3}$")
        await chat.say("xyz")
        await chat.expect_reply(contains="xy", media=False)
        await chat.say("two")
        first = await chat.expect_reply("first")
        second = await chat.expect_reply("second")
        assert chat.replies[-2:] == [first, second]


async def test_typing_read_and_was_typing(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        await chat.say("hello")
        await chat.expect_typing()
        await chat.expect_reply("echo: hello")
        read = await chat.expect_read()
        assert read.text == "hello" and read.status == "read"
        assert chat.was_typing
        await chat.say("quiet")  # marks read, never types
        await chat.expect_read()
        assert not chat.was_typing  # judged since the human last acted
        await chat.expect_silence(0.2)


async def test_bot_tapbacks_and_human_tapbacks(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        said = await chat.say("react laugh")
        tapback = await chat.expect_tapback("laugh")
        assert isinstance(tapback, TimelineReaction)
        assert (tapback.message_id, tapback.sender, tapback.emoji) == (said.id, "them", "😂")
        await chat.say("ping")
        await chat.expect_reply("echo: ping")
        mine = await chat.tapback("love")  # on the bot's last message by default
        assert mine.message_id == chat.replies[-1].id
        await chat.expect_reply("you sent love")
        first = chat.replies[0]
        await chat.tapback("like", first)
        await chat.expect_reply("you sent like")


async def test_connect_returns_the_greeting_and_consumes_it(bot: Bot) -> None:
    async with running(bot, connect=False) as (_, chat):
        assert not chat.connected
        greeting = await chat.connect()
        assert chat.connected
        assert [g.text for g in greeting] == ["echo: connect @testbot"]
        await chat.say("after")
        await chat.expect_reply("echo: after")  # the greeting is not "the next reply"
        again = await chat.connect()  # already connected: the router says so
        assert again == []


async def test_several_humans(bot: Bot) -> None:
    async with running(bot) as (harness, alice):
        bob = harness.chat("+15550001111")
        assert harness.chat("+15550001111") is bob
        await bob.connect()
        await bob.say("from bob")
        await alice.say("from alice")
        await alice.expect_reply("echo: from alice")
        await bob.expect_reply("echo: from bob")
        assert all(item.text != "echo: from bob" for item in alice.items)


async def test_media_upload_and_media_matchers() -> None:
    bot = Bot()

    @bot.on_message(has_media=True)
    async def media(ctx: Context[MessageReceived]) -> None:
        assert ctx.message is not None and ctx.message.media
        item = ctx.message.media[0]
        await ctx.reply(f"got {item.content_type}", media=item.url)

    async with running(bot) as (_, chat):
        said = await chat.say("see", media=b"GIF89a", content_type="image/gif", filename="a.gif")
        assert said.media[0].content_type == "image/gif"
        reply = await chat.expect_reply("got image/gif", media="image/")
        assert reply.media[0].url == said.media[0].url
        assert "[image/gif " in chat.transcript()


async def test_settle_waits_for_slow_handlers(bot: Bot) -> None:
    async with running(bot) as (harness, chat):
        before = len(chat.replies)
        await chat.say("slow 0.3")
        assert len(chat.replies) == before
        await harness.settle()
        assert [r.text for r in chat.replies[before:]] == ["finally"]


async def test_same_bot_twice_and_settings_restored(bot: Bot) -> None:
    for _ in range(2):
        async with running(bot, handle="again") as (_, chat):
            await chat.say("x")
            await chat.expect_reply("echo: x")
    assert bot.handle is None and not bot.running
    assert bot.drain_timeout == 30.0


async def test_external_simulator_is_left_running(bot: Bot) -> None:
    with anyio.fail_after(LIMIT):
        async with Simulator() as sim:
            for text in ("x", "y"):  # the second run finds the phone already connected
                async with BotHarness(bot, simulator=sim) as harness:
                    assert harness.sim is sim
                    chat = harness.chat()
                    await chat.say(text)
                    await chat.expect_reply(f"echo: {text}")
                    await chat.expect_silence(0.1)
                    texts = [r.text for r in chat.replies]  # this run's only
                    assert ("echo: x" in texts) == (text == "x")
            async with InkboxClient(api_key=sim.admin_key, base_url=sim.base_url) as admin:
                assert (await admin.get_identity("testbot")).imessage_enabled
                assert await admin.list_subscriptions() == []  # no webhook to a closed port


async def test_sim_agent_sets_up_an_identity_again_on_a_shared_simulator(bot: Bot) -> None:
    with anyio.fail_after(LIMIT):
        async with Simulator() as sim:
            async with sim_agent(sim, "helper") as first:
                assert first.handle == "helper" and first.identity.imessage_enabled
            async with sim_agent(sim, "helper") as again:  # the identity exists already
                assert again.identity.id == first.identity.id
                assert again.api_key != first.api_key
                await again.connect("+15550001111")
                phone = again.phone("+15550001111")
                with pytest.raises(AssertionError, match="the simulator refused POST"):
                    await phone.react("no-such-message", "love")
                assert await again.agent_texts("+15550001111") == []
                assert not await again.typing("+15550001111")
            async with BotHarness(bot, simulator=sim, handle="helper") as harness:
                assert harness.agent.identity.id == first.identity.id
                assert harness.agent.signing_key == harness.signing_key
                await harness.chat().say("hi")
                await harness.chat().expect_reply("echo: hi")
                assert [m.text for m in await harness.agent.outbound()][-1] == "echo: hi"
        with pytest.raises(RuntimeError, match="not running"):
            _ = harness.agent


# ---------------------------------------------------------------------------- failures


async def test_wrong_reply_fails_with_the_transcript(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        await chat.say("hi")
        with pytest.raises(AssertionError) as caught:
            await chat.expect_reply("echo: bye")
    message = str(caught.value)
    assert message.startswith("expected a reply with text 'echo: bye', but the bot said 'echo: hi'")
    assert "Conversation of +15555550100 with @testbot:" in message
    assert "  me: hi [" in message  # [delivered], or [read] once the bot marked it
    assert "  bot: (typing…)" in message
    assert "  bot: echo: hi [delivered]" in message


async def test_missing_reply_times_out_with_the_transcript(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        await chat.say("quiet")
        with anyio.fail_after(2), pytest.raises(AssertionError) as caught:
            await chat.expect_reply(timeout=0.2)
    assert "expected a reply within 0.2 s; it did not come" in str(caught.value)
    assert "me: quiet" in str(caught.value)
    assert DEFAULT_TIMEOUT == 5.0


async def test_other_mismatches(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        await chat.say("react like")
        with pytest.raises(AssertionError, match="expected a love tapback, but the bot sent like"):
            await chat.expect_tapback("love")
        await chat.say("hello")
        with pytest.raises(AssertionError, match=r"expected silence for 0\.5 s, but the bot said"):
            await chat.expect_silence(0.5)
        await chat.say("style")
        reply = await chat.expect_reply("party")
        assert reply.send_style == "confetti"
        assert "bot: party (confetti) [delivered]" in chat.transcript()
        await chat.say("abc")
        with pytest.raises(AssertionError, match="with an attachment"):
            await chat.expect_reply(media=True)
        await chat.say("quiet")
        with pytest.raises(AssertionError, match="expected the bot to show the typing bubble"):
            await chat.expect_typing(timeout=0.2)


async def test_say_before_connect_fails(bot: Bot) -> None:
    async with running(bot, connect=False) as (_, chat):
        with pytest.raises(AssertionError, match=r"not connected to @testbot: call `await chat"):
            await chat.say("hi")
        with pytest.raises(AssertionError, match="has not sent anything to react to"):
            await chat.tapback("love")
        with pytest.raises(AssertionError, match="has not sent anything yet"):
            await chat.expect_read()


async def test_a_refused_connect_fails(bot: Bot) -> None:
    async with running(bot, connect=False) as (harness, chat):
        sim = harness.sim
        async with InkboxClient(api_key=sim.admin_key, base_url=sim.base_url) as admin:
            await admin.update_identity("testbot", imessage_enabled=False)
        with pytest.raises(AssertionError, match=r"did not connect \+15555550100 to @testbot"):
            await chat.connect()
        assert not chat.connected


# ---------------------------------------------------------------------------- handler errors


async def test_handler_error_is_reraised_into_the_waiting_test(bot: Bot) -> None:
    async with running(bot) as (harness, chat):
        await chat.say("boom")
        with pytest.raises(ZeroDivisionError, match="boom in a handler") as caught:
            await chat.expect_reply()
        notes = "\n".join(caught.value.__notes__)
        assert "raised by the bot in " in notes and "handling imessage.received" in notes
        assert "me: boom" in notes
        assert len(harness.errors) == 1
        await chat.say("after")  # reported once: the harness goes on
        await chat.expect_reply("echo: after")


async def test_handler_error_is_reraised_when_the_harness_stops(bot: Bot) -> None:
    with pytest.raises(ZeroDivisionError):
        async with running(bot) as (harness, chat):
            await chat.say("boom")
            with anyio.fail_after(5):
                while not harness.errors:
                    await anyio.sleep(0.01)


async def test_handler_errors_can_be_collected_instead(bot: Bot) -> None:
    async with running(bot, raise_handler_errors=False) as (harness, chat):
        await chat.say("boom")
        await chat.expect_silence(0.3)
        assert [type(e.exception) for e in harness.errors] == [ZeroDivisionError]
        assert harness.errors[0].event_type == "imessage.received"


async def test_state_reads_what_the_handlers_saved() -> None:
    """Issue 14, item 5: no documented way to read a conversation's ctx.state in a test."""
    bot = Bot()

    @bot.command("count")
    async def count(ctx: Context[MessageReceived]) -> None:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        await ctx.reply(f"You asked {ctx.state['count']} times.")
        await anyio.sleep(0.3)  # the state is saved after the reply reached the phone

    async with running(bot) as (harness, chat):
        assert await chat.state() == {}
        await chat.say("count")
        await chat.expect_reply("You asked 1 times.")
        assert await chat.state() == {"count": 1}  # waited for the handler to save
        await chat.say("count")
        await chat.expect_reply("You asked 2 times.")
        saved = await harness.state()
        assert saved == {"count": 2}
        saved["count"] = 99  # a copy: the bot's state is not changed through it
        bob = harness.chat("+15550001111")
        with pytest.raises(AssertionError, match=r"\+15550001111 has no conversation with"):
            await harness.state(bob)
        await bob.connect()
        await bob.say("count")
        await bob.expect_reply("You asked 1 times.")
        assert await harness.state("+15550001111") == {"count": 1}
        assert await chat.state() == {"count": 2}


def forgetful_bot() -> Bot:
    """Issue 14, item 9: handlers that forget `await` (the reply never goes out)."""
    bot = Bot()

    @bot.command("reply")
    async def reply(ctx: Context[MessageReceived]) -> None:
        ctx.reply("you will never see this")  # type: ignore[unused-coroutine]

    @bot.command("mine")
    async def mine(ctx: Context[MessageReceived]) -> None:
        async def helper() -> None:
            await ctx.reply("nor this")

        helper()  # type: ignore[unused-coroutine]

    return bot


@pytest.mark.parametrize(
    ("command", "coroutine", "code"),
    [
        ("reply", "Context.reply", 'ctx.reply("you will never see this")'),
        ("mine", "forgetful_bot.<locals>.mine.<locals>.helper", "helper()"),
    ],
)
async def test_a_forgotten_await_fails_at_once_and_says_so(
    command: str, coroutine: str, code: str
) -> None:
    async with running(forgetful_bot(), timeout=5) as (harness, chat):
        await chat.say(command)
        started = anyio.current_time()
        with pytest.raises(AssertionError) as caught:
            await chat.expect_reply()
        # Not the 5-second "it did not come": the failure names the cause at once.
        assert anyio.current_time() - started < 2.5
        message = str(caught.value)
        assert message.startswith(f"coroutine {coroutine!r} was never awaited, at ")
        assert "test_testing.py:" in message
        assert f"did you forget `await`? `{code}` makes a coroutine" in message
        assert f"write `await {code}`" in message
        assert f"me: {command}" in message  # the transcript follows
        assert harness.errors == []  # not a handler error: nothing was raised
        await chat.say("all good")  # reported once: the harness goes on
        await chat.expect_silence(0.1)


def test_blocks_noticing_forgotten_awaits_may_overlap_and_end_in_any_order() -> None:
    import warnings

    from imbot.testing.unawaited import noticing_unawaited

    async def nap() -> None: ...

    before = warnings.showwarning
    first: list[str] = []
    second: list[str] = []
    one, two = noticing_unawaited(first.append), noticing_unawaited(second.append)
    one.__enter__()
    two.__enter__()
    nap()  # type: ignore[unused-coroutine]
    one.__exit__(None, None, None)  # before the block that started after it
    nap()  # type: ignore[unused-coroutine]
    two.__exit__(None, None, None)
    assert len(first) == 1
    assert len(second) == 2
    assert all("coroutine 'test_blocks_noticing" in text for text in second)
    assert warnings.showwarning is before


async def test_a_forgotten_await_in_the_test_itself_fails_too(bot: Bot) -> None:
    async with running(bot) as (_, chat):
        chat.say("hi")  # type: ignore[unused-coroutine]
        with pytest.raises(AssertionError, match=r"coroutine 'Conversation.say' was never"):
            await chat.expect_reply()


async def test_the_block_exception_propagates_unchanged(bot: Bot) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with running(bot):
            raise KeyError("mine")
    assert not bot.running


async def test_a_bot_that_fails_to_start_fails_the_harness() -> None:
    @asynccontextmanager
    async def broken(bot: Bot) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    bot = Bot(lifespan=broken)
    with anyio.fail_after(LIMIT), pytest.raises(RuntimeError, match="no database"):
        async with BotHarness(bot):
            pass
    assert bot.handle is None


async def test_a_bot_with_its_own_client_is_refused() -> None:
    bot = Bot(client=InkboxClient(api_key="ApiKey_x", base_url="http://127.0.0.1:9"))
    with anyio.fail_after(LIMIT), pytest.raises(SetupError, match="client="):
        async with BotHarness(bot):
            pass
    assert not bot.running


async def test_a_running_bot_is_refused() -> None:
    bot = Bot(api_key="ApiKey_x", base_url="http://127.0.0.1:9")
    with anyio.fail_after(LIMIT):
        async with bot:
            with pytest.raises(SetupError, match="while the bot is running"):
                async with BotHarness(bot):
                    pass
        assert bot.handle is None  # nothing of the harness was left on the bot


def test_timeline_item_from_json() -> None:
    item = TimelineItem.from_json(
        {
            "id": "m1",
            "thread": "testbot",
            "conversation_id": "c1",
            "from": "me",
            "text": None,
            "media": [{"url": "http://x/a.png", "content_type": "image/png", "size": 3}],
            "send_style": None,
            "status": "read",
            "reactions": [{"id": "r1", "from": "them", "reaction": "custom", "custom_emoji": "🎉"}],
            "created_at": "2026-01-01T00:00:00Z",
        }
    )
    assert item.sender == "me" and item.media[0].size == 3
    assert item.reactions == (TimelineReaction("r1", "them", "custom", "🎉", "m1"),)
    assert item.reactions[0].emoji == "🎉"


# ---------------------------------------------------------------------------- the package


def test_the_public_surface_is_the_package_and_sorted() -> None:
    assert testing.__all__ == sorted(testing.__all__, key=lambda n: (not n.isupper(), n))
    modules = {n for n, v in vars(testing).items() if isinstance(v, types.ModuleType)}
    public = {n for n in dir(testing) if not n.startswith("_") and n not in modules}
    assert set(testing.__all__) == public - {"annotations"}
    for name in testing.__all__:
        member = getattr(testing, name)
        module = getattr(member, "__module__", "imbot.testing.harness")
        assert module.startswith("imbot.testing."), name


def test_the_kit_uses_only_public_seams_of_the_bot_and_the_simulator() -> None:
    private = ("._core", "_error_listeners", "_handle_arg", "._api_key", "._signing_key")
    private += ("._base_url", "_client_arg", "._running_cm")
    for path in pathlib.Path(testing.__file__).parent.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for name in private:
            assert name not in source, f"{path.name} reaches into {name}"


def test_the_kit_docstrings_are_markdown_not_rest() -> None:
    """Issue 14, item 13: the API reference showed "with the conversation so far::"."""
    import ast

    import imbot.pytest_plugin

    paths = [*pathlib.Path(testing.__file__).parent.glob("*.py")]
    paths.append(pathlib.Path(imbot.pytest_plugin.__file__))
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        documented = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        for node in ast.walk(tree):
            if not isinstance(node, documented):
                continue
            doc = ast.get_docstring(node) or ""
            rest = [line for line in doc.splitlines() if line.rstrip().endswith("::")]
            assert not rest, f"{path.name}: a reST literal block marker in {rest[0]!r}"


def test_the_feed_follows_stream_blocks_and_the_transcript_renders_them() -> None:
    feed = PhoneFeed(cast(aiohttp.ClientSession, None), "+15555550100", "testbot", stopping=bool)

    def item(**fields: Any) -> str:
        base = {"id": "m1", "thread": "testbot", "from": "me", "text": "hi", "status": "sent"}
        return f"event: item\ndata: {json.dumps(base | fields)}"

    assert feed.apply("event: ready\ndata: {}") == "ready"
    assert feed.apply(": ping") == ""
    feed.apply(item())
    feed.apply('event: typing\ndata: {"thread": "testbot", "typing": true}')
    feed.apply(item(id="m2", **{"from": "them"}, text="echo: hi", status="delivered"))
    feed.apply(item(status="read"))  # an update: no new line
    love = {"id": "r1", "from": "them", "reaction": "love", "custom_emoji": None}
    feed.apply(item(status="read", reactions=[love]))
    log = feed.log
    assert log.replies == ["m2"] and [t.kind for t in log.bot_tapbacks] == ["love"]
    assert render_transcript(feed.number, feed.handle, log) == (
        "Conversation of +15555550100 with @testbot:\n"
        "  me: hi [read]\n"
        "  bot: (typing…)\n"
        "  bot: echo: hi [delivered]\n"
        '  bot: ❤️ love on "hi"'
    )
    assert feed.apply("event: item\ndata: {not json") == "item"
    assert feed.error is not None and feed.error.startswith("unreadable item event")
    empty = render_transcript(
        "+1555", "x", PhoneFeed(cast(Any, None), "+1555", "x", stopping=bool).log
    )
    assert empty.endswith("(nothing yet)")
