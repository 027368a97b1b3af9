"""The Inkbox API goes down while messages arrive: after it returns, every one is answered once.

The bot's client reaches the simulator through a switch (``support.switch``) that really
stops listening, so sends fail with "connection refused" for the whole outage. Webhooks
keep arriving (the simulator is up; only its API is unreachable from the bot). Handlers
fail on the transient error, their events stay pending in the durable SQLite inbox and run
again with back-off, holding their conversation's lane; once the API answers, each event's
reply goes out exactly once, in order per conversation. A second run restarts the bot in
the middle of the outage: the pending events are resumed from the inbox.

The outage lasts ``IMBOT_OUTAGE_SECONDS`` (3 s by default, to keep the suite short; the
figures in the docs come from a 60 s run).
"""

from __future__ import annotations

import os
import pathlib
import time
from collections import Counter

import anyio
import anyio.abc
import pytest
from support import free_port
from support.switch import api_switch

from imbot import Bot, Context, HandlerRetry, MessageReceived
from imbot.testing import SimAgent, eventually, simulated

OUTAGE = float(os.environ.get("IMBOT_OUTAGE_SECONDS", "3"))
PHONES = [f"+1555555{i:04d}" for i in range(20)]
PER_PHONE = 10  # 200 events


def make_bot(agent: SimAgent, base_url: str, inbox: str) -> Bot:
    bot = Bot(
        api_key=agent.api_key,
        base_url=base_url,
        signing_key=agent.signing_key,
        inbox=inbox,
        handler_retry=HandlerRetry(first_delay=0.2, max_delay=2.0, deadline=OUTAGE + 120),
        drain_timeout=2,
    )

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        if ctx.text.startswith("connect"):
            return
        await ctx.reply(f"re: {ctx.text}")

    return bot


async def serve_on(tg: anyio.abc.TaskGroup, bot: Bot, port: int) -> None:
    await tg.start(bot.serve, "127.0.0.1", port)


async def all_answered(agent: SimAgent) -> dict[str, list[str]]:
    return {phone: await agent.agent_texts(phone) for phone in PHONES}


def sim_port(agent: SimAgent) -> int:
    return int(agent.sim.base_url.rsplit(":", 1)[1])


def expected(phone: str) -> list[str]:
    return [f"re: {phone[-4:]}-{n}" for n in range(PER_PHONE)]


@pytest.mark.parametrize("restart", [False, True], ids=["one-process", "restart-mid-outage"])
async def test_every_message_is_answered_once_in_order_after_an_outage(
    tmp_path: pathlib.Path, restart: bool
) -> None:
    with anyio.fail_after(OUTAGE + 120):
        async with simulated("steady") as agent, api_switch(sim_port(agent)) as switch:
            inbox = f"sqlite:///{tmp_path}/inbox.db"
            port = free_port()
            await agent.subscribe(port)
            async with anyio.create_task_group() as tg:
                bot = make_bot(agent, switch.base_url, inbox)
                await serve_on(tg, bot, port)
                for phone in PHONES:
                    await agent.connect(phone)
                switch.down()
                started = time.monotonic()
                for n in range(PER_PHONE):
                    for phone in PHONES:
                        await agent.text(phone, f"{phone[-4:]}-{n}")
                if restart:
                    await anyio.sleep(min(1.0, OUTAGE / 2))
                    bot.stop()
                    while bot.running or bot.draining:
                        await anyio.sleep(0.05)
                    bot = make_bot(agent, switch.base_url, inbox)
                    await serve_on(tg, bot, port)
                await anyio.sleep(max(0.0, OUTAGE - (time.monotonic() - started)))
                assert await agent.outbound() == []  # nothing got through the outage
                await switch.up()
                back = time.monotonic()
                answered = await eventually(
                    lambda: all_answered(agent),
                    lambda seen: all(seen[p] == expected(p) for p in PHONES),
                    timeout=60,
                )
                recovered = time.monotonic() - back
                bot.stop()
            # Shown with `pytest -s`: the figure docs/dispatch.md quotes.
            total = len(PHONES) * PER_PHONE
            print(f"\noutage {OUTAGE:g} s: all {total} answered {recovered:.1f} s after it")
            assert all(answered[p] == expected(p) for p in PHONES)
            sent = Counter(m.text for m in await agent.outbound())
            assert len(sent) == len(PHONES) * PER_PHONE and set(sent.values()) == {1}
