"""Turns against the simulator: a burst answered once, interruptions, tapbacks, the inbox.

The human texts through the simulator's phone API; the bot gets signed webhooks, gathers
the burst in its conversation's lane and answers through the Inkbox API, as in production.
"""

from __future__ import annotations

import pathlib

import anyio

from imbot import Bot, Context, MessageReceived
from imbot.bot.inbox import open_inbox
from imbot.testing import BotHarness, record_turns, say_burst


async def test_three_texts_a_third_of_a_second_apart_get_one_answer_with_the_defaults() -> None:
    bot = Bot()

    @bot.on_turn()  # quiet=0.75, max_wait=2.0
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        await ctx.reply(f"{len(ctx.turn.messages)} messages: {ctx.text.replace(chr(10), ' / ')}")

    turns = record_turns(bot)
    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await say_burst(chat_, ["hey", "quick q", "weather in Paris?"], gap=0.3)
            await chat_.expect_reply("3 messages: hey / quick q / weather in Paris?")
            await chat_.expect_silence(0.5)
            await harness.settle()
    run = turns.single()
    assert run.texts == ["hey", "quick q", "weather in Paris?"]
    assert (run.restarts, turns.cancelled) == (0, [])


async def test_a_text_while_the_bot_thinks_cancels_the_run_and_one_answer_covers_both() -> None:
    bot = Bot(typing_interval=0.3)

    @bot.on_turn(quiet=0.2, max_wait=1)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        if ctx.turn.restarts == 0:
            async with ctx.typing():
                await anyio.sleep(5)  # the model thinks, until the next text cancels it
                await ctx.reply("never sent")
        await ctx.reply(f"about: {ctx.text.replace(chr(10), ' + ')}")

    turns = record_turns(bot)
    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await chat_.say("what's the weather")
            await chat_.expect_typing()  # the first run is thinking
            await chat_.say("in Paris, I mean")
            await chat_.expect_reply("about: what's the weather + in Paris, I mean")
            await chat_.expect_silence(1.0)  # the cancelled run never answers
            # Its typing bubble (refreshed every 0.3 s while it ran) stopped with it.
            assert not await harness.agent.typing(chat_.number)
            await harness.settle()
    assert [(r.texts, r.restarts, r.outcome) for r in turns.runs] == [
        (["what's the weather"], 0, "cancelled"),
        (["what's the weather", "in Paris, I mean"], 1, "done"),
    ]
    assert harness.errors == []


async def test_a_text_after_the_first_bubble_waits_and_a_second_turn_answers_it() -> None:
    bot = Bot()
    sent_first = anyio.Event()

    @bot.on_turn(quiet=0.2, max_wait=1)
    async def chat(ctx: Context[MessageReceived]) -> None:
        await ctx.reply(f"first part on {ctx.text}")
        sent_first.set()
        await anyio.sleep(0.6)
        await ctx.reply(f"second part on {ctx.text}")

    turns = record_turns(bot)
    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await chat_.say("cats")
            await chat_.expect_reply("first part on cats")
            await chat_.say("dogs")  # the run has sent: it goes on
            await chat_.expect_reply("second part on cats")
            await chat_.expect_reply("first part on dogs")
            await chat_.expect_reply("second part on dogs")
            await harness.settle()
    assert [(r.texts, r.outcome) for r in turns.runs] == [(["cats"], "done"), (["dogs"], "done")]


async def test_a_tapback_inside_a_burst_is_part_of_the_turn() -> None:
    bot = Bot()

    @bot.on_turn(quiet=0.4, max_wait=2)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        kinds = ",".join(str(r.reaction) for r in ctx.turn.reactions) or "none"
        await ctx.reply(f"{len(ctx.turn.messages)} texts, tapbacks: {kinds}")

    turns = record_turns(bot)
    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await chat_.say("tell me a joke")
            await chat_.expect_reply("1 texts, tapbacks: none")
            await chat_.say("haha")
            await chat_.tapback("laugh")  # on the bot's answer
            await chat_.say("another one")
            await chat_.expect_reply("2 texts, tapbacks: laugh")
            await harness.settle()
    assert [(r.texts, r.reactions) for r in turns.finished] == [
        (["tell me a joke"], []),
        (["haha", "another one"], ["laugh"]),
    ]


async def test_a_durable_inbox_has_nothing_pending_after_a_burst(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    bot = Bot(inbox=url)

    @bot.on_turn(quiet=0.2, max_wait=1)
    async def chat(ctx: Context[MessageReceived]) -> None:
        await ctx.reply(f"got: {ctx.text.replace(chr(10), ' ')}")

    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await say_burst(chat_, ["one", "two", "three"], gap=0.05)
            await chat_.expect_reply("got: one two three")
            await harness.settle()
    inbox = open_inbox(url)
    try:
        # Every event, the absorbed messages and the bot's own echoes, is complete.
        assert await inbox.pending() == []
    finally:
        await inbox.close()


async def test_ctx_ask_in_a_turn_handler_gets_the_answer_and_a_command_runs_on_its_own() -> None:
    bot = Bot()

    @bot.command("status")
    async def status(ctx: Context[MessageReceived]) -> None:
        await ctx.reply("all good")

    @bot.on_turn(quiet=0.2, max_wait=1)
    async def chat(ctx: Context[MessageReceived]) -> None:
        city = await ctx.ask("Which city?", timeout=5)
        await ctx.reply(f"{ctx.text} in {city.content}: sunny")

    turns = record_turns(bot)
    with anyio.fail_after(20):
        async with BotHarness(bot, connect_event=False) as harness:
            chat_ = harness.chat()
            await chat_.say("weather?")
            await chat_.expect_reply("Which city?")
            await chat_.say("Paris")  # the answer: to the asker, not a new turn
            await chat_.expect_reply("weather? in Paris: sunny")
            await say_burst(chat_, ["hm", "status"], gap=0.05)
            await chat_.expect_reply("Which city?")  # the turn of "hm" alone asks
            await chat_.say("Rome")
            await chat_.expect_reply("hm in Rome: sunny")
            await chat_.expect_reply("all good")  # the command, after that turn
            await harness.settle()
    assert [r.texts for r in turns.finished] == [["weather?"], ["hm"]]
