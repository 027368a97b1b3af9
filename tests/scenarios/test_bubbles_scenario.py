"""Bubbles, streamed replies and history, end to end: the harness, the simulator, real HTTP."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import datetime

import anyio
import pytest

from imbot import Bot, Context, HandlerRetry, MessageReceived, Pacing
from imbot.bot.bubbles import split_bubbles
from imbot.errors import TransportError
from imbot.models import Message
from imbot.testing import BotHarness, eventually
from imbot.testing.agent import local_simulator, sim_agent

CODE = (
    "```python\n"
    "import functools\n"
    "import time\n"
    "\n"
    "\n"
    "def timed(func):\n"
    "    @functools.wraps(func)\n"
    "    def wrapper(*args, **kwargs):\n"
    "        started = time.perf_counter()\n"
    "        try:\n"
    "            return func(*args, **kwargs)\n"
    "        finally:\n"
    "            took = time.perf_counter() - started\n"
    '            print(f"{func.__name__} took {took:.3f} s. Done.")\n'
    "\n"
    "    return wrapper\n"
    "```"
)
FIRST = (
    "A decorator is a function that takes another function and returns a new one. Python "
    "applies it when the decorated function is defined, so every later call goes through "
    "the wrapper. That makes it the natural place for timing, logging, caching or checking "
    "permissions, without touching the body of the function itself. The standard library "
    "has several, e.g. functools.cache. Writing your own takes a few lines:"
)
SECOND = (
    "Put @timed above any function and each call prints how long it took. functools.wraps "
    "copies the name, the docstring and the signature onto the wrapper, so tools such as "
    "help() and debuggers still see the original. The try and finally make sure the time "
    "is printed even when the function raises. To time coroutines, write the wrapper as "
    "an async function. Read more at "
    "https://docs.python.org/3/glossary.html#term-decorator if you want the details."
)
ANSWER = f"{FIRST}\n\n{CODE}\n\n{SECOND}"
PAUSE = 0.1


def squash(text: str) -> str:
    return "".join(text.split())


def stamp(created_at: str) -> datetime:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00"))


async def test_a_long_answer_arrives_as_bubbles_in_order_with_typing_between() -> None:
    assert 1150 <= len(ANSWER) <= 1300
    expected = split_bubbles(ANSWER)
    assert len(expected) >= 4  # both paragraphs are past the limit: split by sentences
    bot = Bot()

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        await ctx.reply(ANSWER, bubbles=True)

    pacing = Pacing(per_char=0.0, min=PAUSE, max=PAUSE)
    async with BotHarness(bot, pacing=pacing, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("how do decorators work?")
        bubbles = await chat.expect_bubbles(len(expected), typing=True)
        await chat.expect_silence(0.2)
    texts = [b.text for b in bubbles]
    assert texts == expected
    # The code block whole, in one bubble, blank lines and all.
    assert [n for n, t in enumerate(texts) if "```" in (t or "")] == [1]
    assert CODE in (texts[1] or "")
    assert squash("".join(t or "" for t in texts)) == squash(ANSWER)  # nothing lost
    gaps = [
        (stamp(b.created_at) - stamp(a.created_at)).total_seconds()
        for a, b in itertools.pairwise(bubbles)
    ]
    assert all(gap >= PAUSE * 0.9 for gap in gaps), gaps
    assert bot.pacing == Pacing()  # the harness put the bot's own pacing back


async def test_bots_without_bubbles_send_one_message_as_before() -> None:
    bot = Bot()

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        await ctx.reply(ANSWER)

    async with BotHarness(bot, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("how do decorators work?")
        await chat.expect_reply(ANSWER)
        await chat.expect_silence(0.2)


async def test_bot_wide_bubbles_split_every_reply() -> None:
    bot = Bot(bubbles=True)

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        await ctx.reply("Short answer.\n\nAnd a second thought.")
        await ctx.reply("Not this one.\n\nIt says no.", bubbles=False)

    async with BotHarness(bot, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("hi")
        bubbles = await chat.expect_bubbles(2, typing=True)
        assert [b.text for b in bubbles] == ["Short answer.", "And a second thought."]
        await chat.expect_reply("Not this one.\n\nIt says no.")


async def test_reply_stream_sends_the_first_bubble_before_the_stream_ends() -> None:
    bot = Bot(typing_interval=0.4)
    released = anyio.Event()
    sent: list[Message] = []

    async def model() -> AsyncIterator[str]:
        for chunk in ("First paragraph, ", "sent early.\n", "\nSecond"):
            yield chunk
        with anyio.fail_after(5):  # released once the test saw the first bubble
            await released.wait()
        yield " paragraph, at the end."

    @bot.on_message()
    async def stream(ctx: Context[MessageReceived]) -> None:
        sent.extend(await ctx.reply_stream(model()))

    async with BotHarness(bot, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("go")
        first = await chat.expect_bubbles(1)
        assert first[0].text == "First paragraph, sent early."
        # The stream still runs: the typing bubble comes back after the first message.
        assert await eventually(lambda: harness.agent.typing(chat.number), bool, timeout=3)
        released.set()
        await chat.expect_reply("Second paragraph, at the end.")
        await eventually(lambda: harness.agent.typing(chat.number), lambda t: not t, timeout=3)
    assert [m.text for m in sent] == [
        "First paragraph, sent early.",
        "Second paragraph, at the end.",
    ]


async def test_a_failing_stream_keeps_what_was_sent_stops_typing_and_raises() -> None:
    bot = Bot(typing_interval=0.4)

    async def model() -> AsyncIterator[str]:
        yield "This part made it.\n\nThis part"
        raise RuntimeError("the model went away")

    @bot.on_message()
    async def stream(ctx: Context[MessageReceived]) -> None:
        await ctx.reply_stream(model())

    async with BotHarness(bot, raise_handler_errors=False, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("go")
        await chat.expect_reply("This part made it.")
        with anyio.fail_after(3):
            while not harness.errors:
                await anyio.sleep(0.02)
        assert str(harness.errors[0].exception) == "the model went away"
        await anyio.sleep(0.6)  # past a typing refresh: none comes
        assert not await harness.agent.typing(chat.number)
        await chat.expect_silence(0.2)


async def test_a_retried_handler_sends_no_bubble_twice() -> None:
    bot = Bot(handler_retry=HandlerRetry(first_delay=0.05, max_delay=0.1))
    attempts: list[int] = []

    async def model(fail: bool) -> AsyncIterator[str]:
        yield "Streamed one.\n\n"
        if fail:
            raise TransportError("connection reset while streaming")
        yield "Streamed two.\n\nStreamed three."

    @bot.on_message()
    async def flaky(ctx: Context[MessageReceived]) -> None:
        attempts.append(len(attempts) + 1)
        await ctx.reply("Split one.\n\nSplit two.", bubbles=True)
        await ctx.reply_stream(model(fail=len(attempts) == 1))

    async with BotHarness(bot, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("go")
        bubbles = await chat.expect_bubbles(5)
        await chat.expect_silence(0.5)
    assert attempts == [1, 2]
    assert [b.text for b in bubbles] == [
        "Split one.",
        "Split two.",
        "Streamed one.",
        "Streamed two.",
        "Streamed three.",
    ]


async def test_history_after_a_restart_reads_the_earlier_exchange_from_the_api() -> None:
    async with local_simulator(connect_event=False) as sim:
        first = Bot()

        @first.on_message()
        async def greet(ctx: Context[MessageReceived]) -> None:
            await ctx.reply("Nice to meet you, Ada.")

        async with BotHarness(first, simulator=sim, connect_event=False) as harness:
            chat = harness.chat()
            await chat.say("My name is Ada.")
            await chat.expect_reply("Nice to meet you, Ada.")
            conversation_id = (await harness.agent.outbound())[-1].conversation_id

        # Sent outside the bot (a script, the dashboard) while no bot runs.
        async with sim_agent(sim, "testbot") as agent:
            await agent.client.send_message(
                conversation_id=conversation_id, text="A note from the team."
            )

        second = Bot()  # a new process: nothing in memory

        @second.on_message()
        async def recap(ctx: Context[MessageReceived]) -> None:
            entries = await ctx.history(limit=20)
            await ctx.reply("\n".join(f"{e.role}: {e.text}" for e in entries))

        async with BotHarness(second, simulator=sim, connect=False) as harness:
            chat = harness.chat()
            await chat.say("What do you know about me?")
            reply = await chat.expect_reply()
    lines = (reply.text or "").splitlines()
    assert lines[-4:] == [
        "user: My name is Ada.",
        "assistant: Nice to meet you, Ada.",
        "assistant: A note from the team.",
        "user: What do you know about me?",
    ]


async def test_turn_handlers_split_replies_by_default() -> None:
    bot = Bot()
    turns: list[bool] = []

    @bot.on_turn(quiet=0.05, max_wait=0.5)
    async def answer(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        await ctx.reply("One thought.\n\nAnother thought.")
        turns.append(ctx.turn.sent)

    async with BotHarness(bot, connect_event=False) as harness:
        chat = harness.chat()
        await chat.say("hi")
        bubbles = await chat.expect_bubbles(2, typing=True)
        await chat.expect_silence(0.2)
    assert [b.text for b in bubbles] == ["One thought.", "Another thought."]
    assert turns == [True]  # the first bubble marked the turn as answered


async def test_the_harness_makes_pauses_instant_and_expect_bubbles_checks_typing() -> None:
    slow = Pacing(per_char=0.0, min=3.0, max=3.0)
    bot = Bot(pacing=slow)

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        if ctx.text == "split":
            await ctx.reply("First.\n\nSecond.", bubbles=True)
        else:  # two plain messages: no typing bubble between them
            await ctx.reply("First.")
            await ctx.reply("Second.")

    async with BotHarness(bot, connect_event=False, timeout=2.0) as harness:
        chat = harness.chat()
        started = time.monotonic()
        await chat.say("split")
        await chat.expect_bubbles(2, typing=True)
        assert time.monotonic() - started < 2.0  # not the bot's three-second pause
        await chat.say("plain")
        with pytest.raises(AssertionError, match="no typing bubble between 1 and 2"):
            await chat.expect_bubbles(2, typing=True)
    assert bot.pacing == slow
