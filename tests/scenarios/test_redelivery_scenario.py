"""Exactly once: the same signed envelope posted three times runs its handler once."""

from __future__ import annotations

import json

import aiohttp
import anyio
from support import snapshot

from imbot import Bot, Context, MessageReceived
from imbot.testing import eventually, serving, simulated
from imbot.webhooks import sign

HUMAN = "+15555550124"


async def test_the_same_event_three_times_is_handled_once_and_answered_once() -> None:
    with anyio.fail_after(30):
        async with simulated("once") as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key)
            calls: list[str] = []
            seen: list[MessageReceived] = []

            @bot.on_message()
            async def answer(ctx: Context[MessageReceived]) -> None:
                calls.append(ctx.event.id)
                seen.append(ctx.event)
                await ctx.reply(f"got: {ctx.text}")

            async with serving(agent, bot) as port:
                await agent.connect(HUMAN)
                await eventually(lambda: snapshot(seen), lambda s: len(s) == 1)
                # A fresh event in the same, real conversation, delivered three times
                # (retries and replays keep the envelope id), each with its own signature.
                envelope = seen[0].to_wire()
                envelope["id"] = "evt_redelivered_01"
                envelope["data"]["message"]["id"] = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
                envelope["data"]["message"]["content"] = "only once, please"
                body = json.dumps(envelope).encode()
                async with aiohttp.ClientSession() as http:
                    for _ in range(3):
                        headers = {
                            **sign(body, agent.signing_key),
                            "Content-Type": "application/json",
                        }
                        async with http.post(
                            f"http://127.0.0.1:{port}/webhook", data=body, headers=headers
                        ) as response:
                            assert response.status == 200
                await eventually(
                    lambda: agent.agent_texts(HUMAN), lambda t: "got: only once, please" in t
                )
            assert calls.count("evt_redelivered_01") == 1
            texts = await agent.agent_texts(HUMAN)
            assert texts.count("got: only once, please") == 1
