"""A bad day: the echo and stateful examples under chaos still answer every message once, in order.

20 humans text the example bots 25 times each (500 messages per example) while the simulator
has a bad day with a fixed seed: 10 % of API calls fail transiently (8 % answered 429, 502 or
503, 2 % answered after the bot's client has given up) and 10 % of webhooks are disturbed
(4 % delivered twice, 3 % late, 3 % after a failed first attempt). Every message must be
answered exactly once, in order per conversation, as the human's phone shows it.

The bot runs the example's handlers with a client whose timeout (2 s) is shorter than the
slow answers (2.5 s), so the "slow" faults really time out. A third test adds a 3-second API
outage in the middle, longer than the client's own retries last. Each test prints its figures.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import anyio
import pytest
from support import EXAMPLES

from imbot import Bot
from imbot.client import InkboxClient
from imbot.sim import Chaos
from imbot.testing import SimAgent, serving, simulated

pytestmark = pytest.mark.slow

CONVERSATIONS = 20
PER_CONVERSATION = 25
CLIENT_TIMEOUT = 2.0
# Seed 1: among its faults, one echo reply meets three in a row, more than the client's
# own three attempts absorb; only retrying the handler (with the same idempotency key)
# saves it. Other seeds are good days for that: any seed must pass.
CHAOS = Chaos(
    seed=1,
    api_errors=0.08,
    slow=0.02,
    slow_delay=2.5,
    retry_after=1,
    duplicate_webhooks=0.04,
    late_webhooks=0.03,
    late_delay=0.3,
    failed_first_delivery=0.03,
)
DEADLINE = 45.0
STALL = 3.0  # seconds of nothing in flight after which a lost reply is not coming
FAULTS = ("api_calls", "429", "502", "503", "slow", "webhooks", "duplicate", "late", "failed_first")


def phone(index: int) -> str:
    return f"+1555570{index:04d}"


def fresh_example(name: str) -> ModuleType:
    """A new copy of ``examples/<name>.py``: its bot is included in this test's bot only."""
    spec = importlib.util.spec_from_file_location(f"imbot_chaos_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def bad_day(example: str, handle: str) -> AsyncIterator[tuple[SimAgent, Bot, list[str]]]:
    """The example's handlers served under ``CHAOS``; yields the agent, the bot, its errors."""
    async with (
        simulated(handle, chaos=CHAOS) as agent,
        InkboxClient(
            api_key=agent.api_key, base_url=agent.sim.base_url, timeout=CLIENT_TIMEOUT
        ) as client,
    ):
        bot = Bot(client=client, signing_key=agent.signing_key, max_concurrency=64)
        bot.include_router(fresh_example(example).bot)
        errors: list[str] = []
        bot.add_error_listener(lambda ctx, exc: errors.append(f"{type(exc).__name__}: {exc}"))
        async with serving(agent, bot):
            yield agent, bot, errors


async def replies(agent: SimAgent) -> dict[str, list[str]]:
    """What each human's phone shows the bot said, oldest first."""
    return {phone(i): await agent.agent_texts(phone(i)) for i in range(CONVERSATIONS)}


def idle(agent: SimAgent, bot: Bot) -> bool:
    """Nothing in flight: no webhook pending, no handler running (or waiting to retry)."""
    health = bot.health()
    return not agent.sim.busy() and health["lanes"] <= health["asks"]


async def shown(agent: SimAgent, bot: Bot, numbers: list[str], count: int) -> bool:
    """Wait until these phones show ``count`` replies in all; ``False`` once it stalls."""
    calm_since: float | None = None
    while True:
        seen = sum([len(await agent.agent_texts(number)) for number in numbers])
        if seen >= count:
            return True
        if not idle(agent, bot):
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since > STALL:
            return False
        await anyio.sleep(0.25)


async def all_shown(agent: SimAgent, bot: Bot, total: int) -> None:
    """Wait until the phones show ``total`` replies in all, or nothing more is coming."""
    await shown(agent, bot, [phone(i) for i in range(CONVERSATIONS)], total)


async def quiet(agent: SimAgent, bot: Bot) -> None:
    """Wait until no webhook is pending and no handler runs, three polls in a row."""
    calm = 0
    while calm < 3:
        calm = calm + 1 if idle(agent, bot) else 0
        await anyio.sleep(0.1)


def elapsed(started: float) -> float:
    return time.monotonic() - started


def figures(
    name: str,
    agent: SimAgent,
    got: dict[str, list[str]],
    expected: dict[str, list[str]],
    errors: list[str],
    elapsed: float,
) -> dict[str, Any]:
    missing = sum(max(0, len(expected[n]) - len(got[n])) for n in expected)
    extra = sum(max(0, len(got[n]) - len(expected[n])) for n in expected)
    wrong = [n for n in expected if got[n] != expected[n]]
    stats = {key: agent.sim.chaos.stats[key] for key in FAULTS}
    found = {
        "example": name,
        "messages": CONVERSATIONS * PER_CONVERSATION,
        "replies_expected": sum(len(v) for v in expected.values()),
        "replies_seen": sum(len(v) for v in got.values()),
        "missing": missing,
        "extra": extra,
        "conversations_not_exact": len(wrong),
        "handler_errors": len(errors),
        "seconds": round(elapsed, 1),
        "chaos": stats,
    }
    print(f"\nchaos figures: {found}")
    for number in wrong[:3]:
        print(f"  {number} expected: {expected[number]}")
        print(f"  {number} got:      {got[number]}")
    for error in errors[:5]:
        print(f"  handler error: {error}")
    return found


async def test_the_echo_example_answers_every_message_once_and_in_order_on_a_bad_day() -> None:
    with anyio.fail_after(DEADLINE + 15):
        async with bad_day("echo", "echo") as (agent, bot, errors):
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(CONVERSATIONS):
                    tg.start_soon(agent.connect, phone(i))

            async def human(index: int) -> None:
                for n in range(PER_CONVERSATION):
                    await agent.text(phone(index), f"c{index} m{n}")

            async with anyio.create_task_group() as tg:
                for i in range(CONVERSATIONS):
                    tg.start_soon(human, i)
            expected = {
                phone(i): ["connect @echo"] + [f"c{i} m{n}" for n in range(PER_CONVERSATION)]
                for i in range(CONVERSATIONS)
            }
            total = sum(len(texts) for texts in expected.values())
            with anyio.move_on_after(DEADLINE - (time.monotonic() - started)):
                await all_shown(agent, bot, total)
                await quiet(agent, bot)
            got = await replies(agent)
            found = figures("echo", agent, got, expected, errors, time.monotonic() - started)
    assert found["chaos"]["429"] + found["chaos"]["502"] + found["chaos"]["503"] > 0
    assert found["chaos"]["duplicate"] + found["chaos"]["late"] > 0
    assert found["missing"] == 0, "replies lost under chaos"
    assert found["extra"] == 0, "replies sent twice under chaos"
    assert got == expected


async def test_the_stateful_example_answers_every_message_once_and_in_order_on_a_bad_day() -> None:
    with anyio.fail_after(DEADLINE + 15):
        async with bad_day("stateful", "stateful") as (agent, bot, errors):
            started = time.monotonic()
            question = "Hi! I don't know you yet. What's your name?"

            def dialog(index: int) -> list[str]:
                name, city = f"Name{index}", f"City{index}"
                return [
                    question,
                    f"Nice to meet you, {name}! Which city are you in?",
                    f"Thanks! I'll remember you, {name} from {city}.",
                ] + [f"Welcome back, {name} from {city}!"] * (PER_CONVERSATION - 2)

            async def human(index: int) -> None:
                # A person answers a question once it is on the screen, not before; a
                # question that never comes ends this human's part (the figures tell).
                number = phone(index)
                await agent.connect(number)
                for step, answer in enumerate((f"Name{index}", f"City{index}"), start=1):
                    if not await shown(agent, bot, [number], step):
                        return
                    await agent.text(number, answer)
                if not await shown(agent, bot, [number], 3):
                    return
                for n in range(PER_CONVERSATION - 2):
                    await agent.text(number, f"hello again {n}")

            expected = {phone(i): dialog(i) for i in range(CONVERSATIONS)}
            total = sum(len(texts) for texts in expected.values())
            with anyio.move_on_after(DEADLINE):
                async with anyio.create_task_group() as tg:
                    for i in range(CONVERSATIONS):
                        tg.start_soon(human, i)
                await all_shown(agent, bot, total)
                await quiet(agent, bot)
            got = await replies(agent)
            found = figures("stateful", agent, got, expected, errors, time.monotonic() - started)
    assert found["chaos"]["429"] + found["chaos"]["502"] + found["chaos"]["503"] > 0
    assert found["missing"] == 0, "replies lost under chaos"
    assert found["extra"] == 0, "replies sent twice under chaos"
    assert got == expected


OUTAGE = 3.0


async def test_the_echo_example_rides_out_an_api_outage_on_a_bad_day() -> None:
    # On top of the chaos, the API is unreachable for 3 s mid-run: longer than the client's
    # own retries last, so only retrying the handler (and its keyed reply) saves the replies.
    with anyio.fail_after(DEADLINE + 15):
        async with bad_day("echo", "outage") as (agent, bot, errors):
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(CONVERSATIONS):
                    tg.start_soon(agent.connect, phone(i))

            async def human(index: int, first: int, last: int) -> None:
                for n in range(first, last):
                    await agent.text(phone(index), f"c{index} m{n}")

            half = PER_CONVERSATION // 2
            async with anyio.create_task_group() as tg:
                for i in range(CONVERSATIONS):
                    tg.start_soon(human, i, 0, half)
            agent.sim.chaos.take_down(OUTAGE)
            async with anyio.create_task_group() as tg:
                for i in range(CONVERSATIONS):
                    tg.start_soon(human, i, half, PER_CONVERSATION)
            expected = {
                phone(i): ["connect @outage"] + [f"c{i} m{n}" for n in range(PER_CONVERSATION)]
                for i in range(CONVERSATIONS)
            }
            total = sum(len(texts) for texts in expected.values())
            with anyio.move_on_after(DEADLINE - (time.monotonic() - started)):
                await all_shown(agent, bot, total)
                await quiet(agent, bot)
            got = await replies(agent)
            found = figures("echo, 3 s outage", agent, got, expected, errors, elapsed(started))
            refused = agent.sim.chaos.stats["down"]
            print(f"  calls refused by the outage: {refused}")
    assert refused > 0
    assert found["missing"] == 0, "replies lost in the outage"
    assert found["extra"] == 0, "replies sent twice after the outage"
    assert got == expected
