"""Exactly once on the message: a redelivery in a new envelope runs once and sends once.

Inkbox's own plugin does not count on a retry keeping its envelope id, so imbot dedupes on
what the event is about (the message or tapback id) as well, and makes its reply
idempotency keys from it. Two real bot processes, the real simulator, signed webhooks.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
from support import snapshot

from imbot import Bot, Context, MessageReceived
from imbot.testing import eventually, serving
from imbot.testing.agent import SimAgent, local_simulator, sim_agent
from imbot.webhooks import sign

HUMAN = "+15555550125"
MESSAGE_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


async def bot_texts(agent: SimAgent) -> list[str | None]:
    """The texts the bot sent, read through the API (the phone also shows Inkbox's own notes)."""
    return [message.content for message in await agent.outbound()]


def answering(agent: SimAgent, calls: list[str], seen: list[MessageReceived]) -> Bot:
    bot = Bot(client=agent.client, signing_key=agent.signing_key)

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        calls.append(f"{ctx.event.id}:{ctx.message.id if ctx.message else ''}")
        seen.append(ctx.event)
        await ctx.reply(f"got: {ctx.text}")

    return bot


async def post(port: int, envelope: dict[str, Any], signing_key: str) -> None:
    body = json.dumps(envelope).encode()
    headers = {**sign(body, signing_key), "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as response,
    ):
        assert response.status == 200


async def test_a_message_redelivered_in_new_envelopes_runs_once_and_is_answered_once() -> None:
    calls: list[str] = []
    seen: list[MessageReceived] = []
    simulator = local_simulator(connect_event=False)
    with anyio.fail_after(30):
        async with simulator as sim, sim_agent(sim, "once") as agent:
            async with serving(agent, answering(agent, calls, seen)) as port:
                await agent.connect(HUMAN)
                await agent.text(HUMAN, "hi")
                await eventually(lambda: snapshot(seen), lambda s: len(s) == 1)
                # A fresh message in the same, real conversation, delivered twice, each time
                # in an envelope of its own (new id, new signature).
                envelope = seen[0].to_wire()
                envelope["data"]["message"]["id"] = MESSAGE_ID
                envelope["data"]["message"]["content"] = "only once, please"
                for envelope_id in ("evt_first_try", "evt_second_try"):
                    await post(port, {**envelope, "id": envelope_id}, agent.signing_key)
                await eventually(lambda: bot_texts(agent), lambda t: "got: only once, please" in t)
            assert calls.count(f"evt_first_try:{MESSAGE_ID}") == 1
            assert not any(call.startswith("evt_second_try") for call in calls)

            # A new process that remembers nothing (a memory inbox) gets the same message in
            # a third envelope: its handler runs, but the reply's idempotency key comes from
            # the message, so the API replays the first answer instead of sending again.
            async with serving(agent, answering(agent, calls, seen)) as port:
                await post(port, {**envelope, "id": "evt_third_try"}, agent.signing_key)
                await eventually(lambda: snapshot(calls), lambda c: len(c) == 3)
            texts = await bot_texts(agent)
    assert calls[-1] == f"evt_third_try:{MESSAGE_ID}"
    assert texts.count("got: only once, please") == 1
    assert texts == ["got: hi", "got: only once, please"]
