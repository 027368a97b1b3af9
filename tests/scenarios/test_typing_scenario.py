"""ctx.typing(): the human sees the agent typing during a 5-second handler, and not after."""

from __future__ import annotations

import time

import anyio

from imbot import Bot, Context, MessageReceived
from imbot.testing import eventually, serving, simulated

HUMAN = "+15555550126"


async def test_typing_during_a_five_second_handler_and_not_after() -> None:
    with anyio.fail_after(40):
        async with simulated("thinker") as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key, typing_interval=1.0)

            @bot.command("think")
            async def think(ctx: Context[MessageReceived]) -> None:
                async with ctx.typing():
                    await anyio.sleep(5)
                await ctx.reply("Here is my answer.")

            @bot.on_message()
            async def other(ctx: Context[MessageReceived]) -> None:
                pass

            async with serving(agent, bot):
                await agent.connect(HUMAN)
                assert not await agent.typing(HUMAN)
                started = time.monotonic()
                await agent.text(HUMAN, "think")
                assert await eventually(lambda: agent.typing(HUMAN), bool, timeout=2)
                samples = []
                while time.monotonic() - started < 4.5:
                    samples.append(await agent.typing(HUMAN))
                    await anyio.sleep(0.25)
                assert samples and all(samples)
                await eventually(
                    lambda: agent.agent_texts(HUMAN), lambda t: "Here is my answer." in t
                )
                assert time.monotonic() - started >= 5
                assert not await agent.typing(HUMAN)
                await anyio.sleep(1.5)  # longer than the refresh interval: no stray refresh
                assert not await agent.typing(HUMAN)
