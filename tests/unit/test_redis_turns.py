"""Turns on a shared store: the burst gathers in the conversation's queue in Redis.

The same scenarios as ``tests/scenarios/test_turns_scenario.py``, with ``Bot(store=redis)``:
the turn reads the messages queued behind its first one through ``QueueView`` (peek, take,
wait) instead of the in-process lane.
"""

from __future__ import annotations

import anyio

from imbot import Bot, Context, MessageReceived
from imbot.testing import BotHarness, record_turns, say_burst


async def test_a_burst_gets_one_answer(redis_url: str) -> None:
    bot = Bot(store=redis_url)

    @bot.on_turn(quiet=0.3, max_wait=2.0)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        await ctx.reply(f"{len(ctx.turn.messages)} messages: {ctx.text.replace(chr(10), ' / ')}")
        ctx.state["turns"] = ctx.state.get("turns", 0) + 1

    turns = record_turns(bot)
    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await say_burst(chat_, ["hey", "quick q", "weather in Paris?"], gap=0.1)
            await chat_.expect_reply("3 messages: hey / quick q / weather in Paris?")
            await chat_.expect_silence(0.5)
            await harness.settle()
            state = await chat_.state()
            assert bot._runtime is not None
            pending = await bot._runtime.inbox.pending()
    assert turns.single().texts == ["hey", "quick q", "weather in Paris?"]
    assert state == {"turns": 1}
    assert pending == []  # the messages the turn took were completed with it


async def test_a_text_while_the_bot_thinks_restarts_the_turn(redis_url: str) -> None:
    bot = Bot(store=redis_url, typing_interval=0.3)

    @bot.on_turn(quiet=0.2, max_wait=1)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        if ctx.turn.restarts == 0:
            await anyio.sleep(5)  # the model thinks, until the next text cancels it
            await ctx.reply("never sent")
        await ctx.reply(f"about: {ctx.text.replace(chr(10), ' + ')}")

    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await chat_.say("what's the weather")
            await anyio.sleep(0.6)  # the first run is thinking
            await chat_.say("in Paris, I mean")
            await chat_.expect_reply("about: what's the weather + in Paris, I mean")
            await chat_.expect_silence(0.5)
