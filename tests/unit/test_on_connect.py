"""``@bot.on_connect``: a greeting that works in Inkbox's real connect flow.

The human's ``connect @handle`` goes to the router and never reaches the bot; the human's
first message in the new thread is the bot's first event. The simulator runs that flow with
``connect_event=False``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import pytest

from imbot import Bot, Context, HandlerRetry, MessageReceived, Router, Sender
from imbot.client import InkboxClient
from imbot.client.transport import AiohttpTransport, Request, Response
from imbot.errors import SetupError
from imbot.routing.invoke import Invoker
from imbot.routing.table import RouteTable
from imbot.testing import eventually, message_event, serving
from imbot.testing.agent import SimAgent, local_simulator, sim_agent
from imbot.testing.events import OTHER_PHONE, PHONE

HUMAN = "+15555550131"


async def bot_texts(agent: SimAgent) -> list[str | None]:
    """The texts the bot sent, read through the API (the phone also shows Inkbox's own notes)."""
    return [message.content for message in await agent.outbound()]


class Counting:
    """The real transport, counting the bot's reads of a conversation's messages."""

    def __init__(self) -> None:
        self.message_lists = 0
        self._real = AiohttpTransport()

    async def send(self, request: Request) -> Response:
        if request.method == "GET" and "/imessage/messages?" in request.url:
            self.message_lists += 1
        return await self._real.send(request)

    async def aclose(self) -> None:
        await self._real.aclose()


class Flaky(Counting):
    """Answers the first ``failures`` reads of a conversation's messages with a 503."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send(self, request: Request) -> Response:
        if request.method == "GET" and "/imessage/messages?" in request.url and self.failures:
            self.failures -= 1
            self.message_lists += 1
            return Response(503, {"Content-Type": "application/json"}, b'{"detail": "busy"}')
        return await super().send(request)


@asynccontextmanager
async def real_flow(handle: str) -> AsyncIterator[SimAgent]:
    """A simulator in Inkbox's connect flow, with one agent identity."""
    simulator = local_simulator(connect_event=False, retry_delays=(0.05, 0.1, 0.2, 0.4, 0.8))
    async with simulator as sim, sim_agent(sim, handle) as agent:
        yield agent


@asynccontextmanager
async def greeter(
    agent: SimAgent, log: list[str], wire: Counting | None = None
) -> AsyncIterator[tuple[Bot, Counting]]:
    """A bot that greets on connect and echoes, with a transport that counts list calls."""
    wire = wire or Counting()
    client = InkboxClient(api_key=agent.api_key, base_url=agent.sim.base_url, transport=wire)
    retry = HandlerRetry(first_delay=0.05, max_delay=0.1)
    bot = Bot(client=client, signing_key=agent.signing_key, handler_retry=retry)

    @bot.on_connect
    async def greet(ctx: Context[MessageReceived]) -> None:
        log.append(f"greet:{ctx.text}")
        await ctx.reply("welcome")

    @bot.on_message()
    async def echo(ctx: Context[MessageReceived]) -> None:
        log.append(f"echo:{ctx.text}:{ctx.new_connection}")
        await ctx.reply(f"echo: {ctx.text}")

    try:
        yield bot, wire
    finally:
        await client.aclose()
        await wire.aclose()


async def test_the_first_message_is_greeted_then_routed_and_only_it() -> None:
    log: list[str] = []
    with anyio.fail_after(20):
        async with (
            real_flow("greeter") as agent,
            greeter(agent, log) as (bot, wire),
            serving(agent, bot),
        ):
            await agent.connect(HUMAN)
            await agent.text(HUMAN, "hi")
            await eventually(lambda: bot_texts(agent), lambda t: t == ["welcome", "echo: hi"])
            assert wire.message_lists == 1  # the first message asked the API once
            await agent.text(HUMAN, "again")
            await eventually(lambda: bot_texts(agent), lambda t: len(t) == 3)
            assert wire.message_lists == 1  # later messages: answered from the cache
    # The connect text never reached the bot; the first message was greeted, then routed.
    assert log == ["greet:hi", "echo:hi:True", "echo:again:False"]


async def test_an_api_outage_while_asking_delays_the_greeting_and_loses_nothing() -> None:
    log: list[str] = []
    flaky = Flaky(3)  # the client's three tries of the first read all fail: a transient error
    with anyio.fail_after(20):
        async with (
            real_flow("greeter") as agent,
            greeter(agent, log, flaky) as (bot, wire),
            serving(agent, bot),
        ):
            await agent.connect(HUMAN)
            await agent.text(HUMAN, "hi")
            await eventually(lambda: bot_texts(agent), lambda t: t == ["welcome", "echo: hi"])
    assert wire.message_lists == 4  # three failed reads, then the retried event's
    assert log == ["greet:hi", "echo:hi:True"]


async def test_a_restarted_bot_does_not_greet_again_and_a_reconnect_is_greeted() -> None:
    log: list[str] = []
    with anyio.fail_after(30):
        async with real_flow("greeter") as agent:
            async with greeter(agent, log) as (bot, _), serving(agent, bot):
                await agent.connect(HUMAN)
                await agent.text(HUMAN, "hi")
                await eventually(lambda: bot_texts(agent), lambda t: len(t) == 2)
            # A new process: nothing cached, the API tells it this is not the first message.
            async with greeter(agent, log) as (bot, wire), serving(agent, bot):
                await agent.text(HUMAN, "after the restart")
                await eventually(lambda: bot_texts(agent), lambda t: len(t) == 3)
                assert wire.message_lists == 1
                # Released, then connected again: a new connection, greeted again.
                (assignment,) = await agent.admin.list_assignments(
                    agent_identity_id=agent.identity.id
                )
                await agent.admin.release_assignment(assignment.id)
                await agent.connect(HUMAN)
                await agent.text(HUMAN, "back")
                await eventually(lambda: bot_texts(agent), lambda t: len(t) == 5)
    assert log == [
        "greet:hi",
        "echo:hi:True",
        "echo:after the restart:False",
        "greet:back",
        "echo:back:True",
    ]


# --- routing, without IO: the bot hands over ctx.new_connection ----------------------------


async def route(bot: Bot, *, new_connection: bool, text: str = "hi") -> bool:
    bot.freeze()
    table = RouteTable(bot, prefixes=bot.command_prefixes)
    invoker = Invoker(table, report=lambda ctx, exc: None, usage_reply=_no_usage)
    # These handlers touch neither the client nor the state: no services needed.
    ctx: Context[Any] = Context(cast(Any, None), message_event(text, sender=PHONE))
    ctx.new_connection = new_connection
    return await invoker.run(ctx)


async def _no_usage(ctx: Context[Any], text: str) -> None:
    raise AssertionError(text)


async def test_connect_handlers_run_in_order_skip_passes_and_routing_goes_on() -> None:
    bot = Bot()
    seen: list[str] = []

    @bot.on_connect(when=Sender(OTHER_PHONE))
    async def not_this_human(ctx: Context[MessageReceived]) -> None:
        seen.append("other")

    @bot.on_connect()
    async def declines(ctx: Context[MessageReceived]) -> None:
        seen.append("declines")
        ctx.skip()

    router = Router()

    async def greets(ctx: Context[MessageReceived]) -> None:
        seen.append(f"greets:{ctx.handler_name}")

    router.add_connect_handler(greets)
    bot.include_router(router)

    @bot.command("hi")
    async def hi(ctx: Context[MessageReceived]) -> None:
        seen.append(f"hi:{ctx.handler_name}")

    assert await route(bot, new_connection=True)
    assert seen == [
        "declines",
        "greets:test_connect_handlers_run_in_order_skip_passes_and_routing_goes_on.<locals>.greets",
        "hi:test_connect_handlers_run_in_order_skip_passes_and_routing_goes_on.<locals>.hi",
    ]


async def test_connect_handlers_are_no_candidates_for_other_messages() -> None:
    bot = Bot()
    seen: list[str] = []

    @bot.on_connect
    async def greet(ctx: Context[MessageReceived]) -> None:
        seen.append("greet")

    assert not await route(bot, new_connection=False)  # nothing else registered: unhandled
    assert seen == []
    assert await route(Bot(), new_connection=True) is False  # no connect handler: nothing


async def test_a_greeting_alone_counts_as_handled() -> None:
    bot = Bot()

    @bot.on_connect
    async def greet(ctx: Context[MessageReceived]) -> None:
        pass

    assert await route(bot, new_connection=True)


def test_registration_forms() -> None:
    bot = Bot()

    async def greet(ctx: Context[MessageReceived]) -> None: ...

    assert bot.on_connect(greet) is greet
    assert bot.on_connect()(greet) is greet
    bot.add_connect_handler(greet)
    assert [spec.kind for spec in bot.handlers()] == ["connect"] * 3
    with pytest.raises(SetupError, match="when= only in the called form"):
        bot.on_connect(greet, when=Sender(PHONE))
    with pytest.raises(SetupError, match="async def"):
        bot.add_connect_handler(lambda ctx: None)  # type: ignore[arg-type, return-value]
