"""The bot's own tapbacks come back as outbound ``imessage.reaction_received``: no loop.

Inkbox echoes an agent's tapback to its webhook with ``direction: "outbound"``. A tapback
handler that answers with a tapback would answer its own echo, and that echo, forever;
``on_tapback`` handlers therefore see only the human's tapbacks unless asked otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest
from support import snapshot

from imbot import Bot, Context, ReactionReceived
from imbot.errors import SetupError
from imbot.events import parse_event
from imbot.models import Reaction
from imbot.testing import eventually, offline_client, run_events, serving
from imbot.testing.agent import SimAgent, local_simulator, sim_agent
from imbot.testing.events import CONVERSATION_ID, PHONE
from imbot.webhooks import sign

HUMAN = "+15555550126"


async def bot_texts(agent: SimAgent) -> list[str | None]:
    """The texts the bot sent, read through the API (the phone also shows Inkbox's own notes)."""
    return [message.content for message in await agent.outbound()]


def tapback_event(direction: str, *, reaction_id: str, event_id: str) -> ReactionReceived:
    """A tapback without an ``assignment_id`` (as on a group row), in either direction."""
    event = parse_event(
        json.dumps(
            {
                "id": event_id,
                "event_type": "imessage.reaction_received",
                "timestamp": "2026-06-09T14:34:10Z",
                "data": {
                    "message": None,
                    "reaction": {
                        "id": reaction_id,
                        "conversation_id": CONVERSATION_ID,
                        "target_message_id": "b7e1f3a5-9c2d-4e6f-8a0b-1c3d5e7f9a21",
                        "direction": direction,
                        "reaction": "like",
                        "custom_emoji": None,
                        "remote_number": PHONE,
                        "part_index": 0,
                        "created_at": "2026-06-09T14:34:09Z",
                        "updated_at": "2026-06-09T14:34:09Z",
                    },
                    "contacts": [],
                    "agent_identities": [],
                },
            }
        )
    )
    assert isinstance(event, ReactionReceived)
    return event


async def test_an_outbound_echo_does_not_reach_a_tapback_handler() -> None:
    bot = Bot(client=offline_client())
    ran: list[str] = []

    @bot.on_tapback
    async def tap_back(ctx: Context[ReactionReceived]) -> None:
        ran.append(ctx.event.id)
        await ctx.react("like")  # would fail offline, and be retried until the timeout

    echo = tapback_event("outbound", reaction_id="rx-own", event_id="evt_echo")
    assert await run_events(bot, echo, timeout=3) == [True]
    assert ran == []


async def test_direction_chooses_which_tapbacks_a_handler_sees() -> None:
    bot = Bot(client=offline_client())
    seen: list[str] = []

    @bot.on_tapback("like", direction="outbound")
    async def mine(ctx: Context[ReactionReceived]) -> None:
        seen.append(f"outbound:{ctx.event.id}")

    @bot.on_tapback(direction="any")
    async def every(ctx: Context[ReactionReceived]) -> None:
        seen.append(f"any:{ctx.event.id}")

    events = [
        tapback_event("outbound", reaction_id="rx-1", event_id="evt_out"),
        tapback_event("inbound", reaction_id="rx-2", event_id="evt_in"),
    ]
    await run_events(bot, *events)
    assert seen == ["outbound:evt_out", "any:evt_in"]
    with pytest.raises(SetupError, match="direction must be"):
        bot.add_tapback_handler(mine, direction="sideways")  # type: ignore[arg-type]


async def test_a_bot_answering_tapbacks_with_tapbacks_does_not_answer_its_own() -> None:
    ran: list[str] = []
    sent: list[Reaction] = []
    simulator = local_simulator(connect_event=False)
    with anyio.fail_after(30):
        async with simulator as sim, sim_agent(sim, "mirror") as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key)

            @bot.on_message()
            async def hello(ctx: Context[Any]) -> None:
                await ctx.reply("hello")

            @bot.on_tapback
            async def tap_back(ctx: Context[ReactionReceived]) -> None:
                ran.append(ctx.event.data.reaction.direction)
                sent.append(await ctx.react("like"))  # on the message the human tapped

            async with serving(agent, bot) as port:
                await agent.connect(HUMAN)
                await agent.text(HUMAN, "hi")
                await eventually(lambda: bot_texts(agent), lambda t: t == ["hello"])
                (hello_message,) = await agent.outbound()
                await agent.phone(HUMAN).react(hello_message.id, "love")
                await eventually(lambda: snapshot(sent), lambda s: len(s) == 1)
                # Inkbox echoes the bot's own tapback back to it, signed like any event.
                echo = {
                    "id": "evt_own_tapback",
                    "event_type": "imessage.reaction_received",
                    "timestamp": "2026-06-09T14:34:10Z",
                    "data": {
                        "message": None,
                        "reaction": sent[0].to_wire(),
                        "contacts": [],
                        "agent_identities": [],
                    },
                }
                body = json.dumps(echo).encode()
                headers = {**sign(body, agent.signing_key), "Content-Type": "application/json"}
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r,
                ):
                    assert r.status == 200
                # The echo was accepted before the 200: once its lane is gone, it was handled.
                await eventually(lambda: snapshot([bot.health()]), lambda h: h[0]["lanes"] == 0)
    assert sent[0].direction == "outbound"
    assert ran == ["inbound"]
    assert len(sent) == 1
