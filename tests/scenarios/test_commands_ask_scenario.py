"""Typed commands answer bad arguments with usage; ctx.ask holds a dialogue while others flow."""

from __future__ import annotations

import anyio

from imbot import Bot, Context, MessageReceived
from imbot.testing import eventually, serving, simulated

ALICE = "+15555550131"
BOB = "+15555550132"


async def test_a_wrong_argument_gets_the_usage_line_and_no_handler_call() -> None:
    with anyio.fail_after(30):
        async with simulated("helper") as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key)
            calls: list[tuple[int, str]] = []

            @bot.command("remind")
            async def remind(ctx: Context[MessageReceived], minutes: int, *, text: str) -> None:
                """Remind you of something in a few minutes."""
                calls.append((minutes, text))
                await ctx.reply(f"OK: {text} in {minutes} min")

            async with serving(agent, bot):
                await agent.connect(ALICE)
                await agent.text(ALICE, "remind soon buy milk")
                await agent.text(ALICE, "/remind 10")
                await agent.text(ALICE, "Remind 5 buy milk")
                texts = await eventually(
                    lambda: agent.agent_texts(ALICE), lambda t: "OK: buy milk in 5 min" in t
                )
            assert texts[0] == (
                "Usage: remind <minutes:int> <text>\nminutes must be a whole number (got 'soon')"
            )
            assert "(got 'soon')" in texts[0]
            assert texts[1] == "Usage: remind <minutes:int> <text>\nmissing <text>"
            assert calls == [(5, "buy milk")]


async def test_ask_collects_two_answers_while_another_person_keeps_talking() -> None:
    with anyio.fail_after(30):
        async with simulated("signup") as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key)
            echoed: list[tuple[str, str]] = []

            @bot.command("signup")
            async def signup(ctx: Context[MessageReceived]) -> None:
                name = await ctx.ask("What's your name?", timeout=20)
                city = await ctx.ask(f"Hi {name.text}! Which city?", timeout=20)
                ctx.state["profile"] = {"name": name.text, "city": city.text}
                await ctx.reply(f"Signed up {name.text} from {city.text}")

            @bot.on_message()
            async def echo(ctx: Context[MessageReceived]) -> None:
                echoed.append((ctx.sender, ctx.text))
                await ctx.reply(f"echo: {ctx.text}")

            async with serving(agent, bot):
                await agent.connect(ALICE)
                await agent.connect(BOB)
                await agent.text(ALICE, "signup")
                await eventually(
                    lambda: agent.agent_texts(ALICE), lambda t: "What's your name?" in t
                )
                await agent.text(BOB, "bob one")
                await eventually(lambda: agent.agent_texts(BOB), lambda t: "echo: bob one" in t)
                await agent.text(ALICE, "Alice")
                await eventually(
                    lambda: agent.agent_texts(ALICE), lambda t: "Hi Alice! Which city?" in t
                )
                await agent.text(BOB, "bob two")
                await eventually(lambda: agent.agent_texts(BOB), lambda t: "echo: bob two" in t)
                await agent.text(ALICE, "Paris")
                alice = await eventually(
                    lambda: agent.agent_texts(ALICE), lambda t: "Signed up Alice from Paris" in t
                )
            assert alice == [
                f"echo: connect @{agent.handle}",
                "What's your name?",
                "Hi Alice! Which city?",
                "Signed up Alice from Paris",
            ]
            assert (ALICE, "Alice") not in echoed and (ALICE, "Paris") not in echoed
            assert [text for sender, text in echoed if sender == BOB] == [
                f"connect @{agent.handle}",
                "bob one",
                "bob two",
            ]
