"""The smallest bot: an echo bot of ten lines answers a human texting through the simulator."""

from __future__ import annotations

import inspect

import anyio

from imbot import Bot
from imbot.testing import eventually, serving, simulated

HUMAN = "+15555550123"


def make_echo_bot(api_key: str, base_url: str, signing_key: str) -> Bot:
    from imbot import Bot

    bot = Bot("echo", api_key=api_key, signing_key=signing_key, base_url=base_url)

    @bot.on_message()
    async def echo(ctx):  # type: ignore[no-untyped-def]
        await ctx.reply(ctx.text)

    return bot


def test_the_echo_bot_fits_in_ten_lines() -> None:
    assert len(inspect.getsource(make_echo_bot).strip().splitlines()) <= 10


async def test_an_echo_bot_answers_a_human() -> None:
    with anyio.fail_after(30):
        async with simulated("echo") as agent:
            bot = make_echo_bot(agent.api_key, agent.sim.base_url, agent.signing_key)
            async with serving(agent, bot):
                await agent.connect(HUMAN)  # the first received message: "connect @echo"
                await agent.text(HUMAN, "Hello, bot!")
                texts = await eventually(
                    lambda: agent.agent_texts(HUMAN), lambda t: "Hello, bot!" in t
                )
            assert texts == ["connect @echo", "Hello, bot!"]
            timeline = await agent.timeline(HUMAN)
            theirs = [i for i in timeline["items"] if i["from"] == "them" and i["thread"] == "echo"]
            assert all(i["status"] == "delivered" for i in theirs)
