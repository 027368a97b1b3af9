"""1,000 events over 50 conversations: per-conversation order, and real concurrency."""

from __future__ import annotations

import time
from collections import defaultdict

import anyio
from support import snapshot

from imbot import Bot, Context, MessageReceived
from imbot.testing import eventually, serving, simulated

CONVERSATIONS = 50
PER_CONVERSATION = 20
HANDLER_SECONDS = 0.2


def phone(index: int) -> str:
    return f"+1555560{index:04d}"


async def test_a_thousand_events_keep_their_order_and_run_concurrently() -> None:
    with anyio.fail_after(120):
        async with simulated("busy", send_cap=None) as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key, max_concurrency=64)
            calls: dict[str, list[str]] = defaultdict(list)
            finished: list[str] = []

            @bot.on_message()
            async def slow(ctx: Context[MessageReceived]) -> None:
                if ctx.text.startswith("connect"):
                    return
                calls[ctx.sender].append(ctx.text)
                await anyio.sleep(HANDLER_SECONDS)
                finished.append(ctx.text)

            async with serving(agent, bot):
                async with anyio.create_task_group() as tg:
                    for index in range(CONVERSATIONS):
                        tg.start_soon(agent.connect, phone(index))
                started = time.monotonic()

                async def human(index: int) -> None:
                    for n in range(PER_CONVERSATION):
                        await agent.text(phone(index), f"{index}:{n}")

                async with anyio.create_task_group() as tg:
                    for index in range(CONVERSATIONS):
                        tg.start_soon(human, index)
                total = CONVERSATIONS * PER_CONVERSATION
                await eventually(
                    lambda: snapshot(finished), lambda f: len(f) == total, timeout=90, interval=0.1
                )
                elapsed = time.monotonic() - started

            assert len(calls) == CONVERSATIONS
            for index in range(CONVERSATIONS):
                expected = [f"{index}:{n}" for n in range(PER_CONVERSATION)]
                assert calls[phone(index)] == expected, f"conversation {index} out of order"
            serial = total * HANDLER_SECONDS  # 200 s if handlers ran one at a time
            assert elapsed < serial / 10, f"took {elapsed:.1f} s"
