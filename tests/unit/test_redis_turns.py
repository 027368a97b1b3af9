"""Turns on a shared store: the burst gathers in the conversation's queue in Redis.

The same scenarios as ``tests/scenarios/test_turns_scenario.py``, with ``Bot(store=redis)``:
the turn reads the messages queued behind its first one through ``QueueView`` (peek, take,
wait) instead of the in-process lane. Two processes (two runtimes on one Redis, each on its
own port) make one turn of a burst spread over both, and a text reaching the other one
interrupts a run at once: Redis tells the lane's holder (``RedisLanes.watch``).
"""

from __future__ import annotations

import aiohttp
import anyio
import pytest
from support.cluster import KEY, envelope, post, served

from imbot import Bot, Context, MessageReceived
from imbot.bot import cluster_lanes
from imbot.testing import BotHarness, record_turns, say_burst
from imbot.testing.events import offline_client


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


# --------------------------------------------------------------------------- two processes


def turn_bot(url: str, runs: list[tuple[int, list[str]]], *, think: float = 0.0) -> Bot:
    """A bot whose turn handler notes each run (restarts, texts), thinking ``think`` s first."""
    bot = Bot(client=offline_client(), signing_key=KEY, store=url, drain_timeout=5)

    @bot.on_turn(quiet=1.0, max_wait=5)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        runs.append((ctx.turn.restarts, [m.text for m in ctx.turn.messages]))
        if ctx.turn.restarts == 0:
            await anyio.sleep(think)

    return bot


@pytest.fixture
def notices_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queues are looked at again only after 30 s: what a turn sees sooner, a notice told."""
    monkeypatch.setattr(cluster_lanes, "_LOOK", 30.0)
    monkeypatch.setattr(cluster_lanes, "_WATCH_TTL", 90.0)


async def test_a_burst_spread_over_two_processes_is_one_turn(
    redis_url: str, notices_only: None
) -> None:
    runs: list[tuple[int, list[str]]] = []
    a, b = turn_bot(redis_url, runs), turn_bot(redis_url, runs)
    texts = ["hey", "quick q", "weather", "in Paris?"]
    with anyio.fail_after(20):
        async with served(a) as port_a, served(b) as port_b, aiohttp.ClientSession() as http:
            for n, text in enumerate(texts):  # the first to a (it takes the lane), then b, a…
                assert await post(http, (port_a, port_b)[n % 2], envelope("conv-t", text)) == 200
                await anyio.sleep(0.2)
            while not runs:
                await anyio.sleep(0.02)
            await anyio.sleep(0.6)  # a second turn would have formed by now
    assert runs == [(0, texts)]


async def test_a_text_to_another_process_interrupts_the_turn_at_once(
    redis_url: str, notices_only: None
) -> None:
    runs: list[tuple[int, list[str]]] = []
    a, b = turn_bot(redis_url, runs, think=20), turn_bot(redis_url, runs, think=20)
    with anyio.fail_after(10):  # without the notice, the turn would think for 20 s
        async with served(a) as port_a, served(b) as port_b, aiohttp.ClientSession() as http:
            assert await post(http, port_a, envelope("conv-i", "what's the weather")) == 200
            while not runs:
                await anyio.sleep(0.02)
            assert await post(http, port_b, envelope("conv-i", "in Paris, I mean")) == 200
            while len(runs) < 2:
                await anyio.sleep(0.02)
    assert runs == [(0, ["what's the weather"]), (1, ["what's the weather", "in Paris, I mean"])]
