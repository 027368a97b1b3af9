"""Middleware: composition order, short-circuits, and router-level chains."""

from __future__ import annotations

from typing import Any

from imbot import Bot, Context, Router
from imbot.routing.middleware import compose
from imbot.testing.events import message_event, offline_client, run_events
from imbot.types import Next


async def test_compose_runs_outermost_first() -> None:
    order: list[str] = []

    def make(name: str) -> Any:
        async def middleware(ctx: Context[Any], call_next: Next) -> None:
            order.append(f"{name}>")
            await call_next(ctx)
            order.append(f"<{name}")

        return middleware

    async def endpoint(ctx: Context[Any]) -> None:
        order.append("handler")

    call = compose([make("a"), make("b")], endpoint)
    await call(None)  # type: ignore[arg-type]
    assert order == ["a>", "b>", "handler", "<b", "<a"]
    assert "middleware" in repr(call)


def test_compose_without_middleware_is_the_endpoint() -> None:
    async def endpoint(ctx: Context[Any]) -> None: ...

    assert compose([], endpoint) is endpoint


async def test_bot_and_router_middleware_wrap_handlers_in_order() -> None:
    order: list[str] = []
    bot = Bot(client=offline_client())
    router = Router(name="inner")

    @bot.middleware
    async def outer(ctx: Context[Any], call_next: Next) -> None:
        order.append(f"outer:{ctx.handler_name}")
        await call_next(ctx)

    @router.middleware()
    async def inner(ctx: Context[Any], call_next: Next) -> None:
        order.append("inner")
        await call_next(ctx)

    @router.command("ping")
    async def ping(ctx: Context[Any], n: int) -> None:
        order.append(f"ping {n} {ctx.args}")

    @bot.on_message()
    async def other(ctx: Context[Any]) -> None:
        order.append("other")

    bot.include_router(router)
    await run_events(bot, message_event("ping 3"))
    await run_events(bot, message_event("hello"))
    assert order == [
        "outer:test_bot_and_router_middleware_wrap_handlers_in_order.<locals>.ping",
        "inner",
        "ping 3 {'n': 3}",
        "outer:test_bot_and_router_middleware_wrap_handlers_in_order.<locals>.other",
        "other",
    ]


async def test_middleware_that_does_not_call_next_stops_the_event() -> None:
    ran: list[str] = []
    bot = Bot(client=offline_client())

    @bot.middleware
    async def gate(ctx: Context[Any], call_next: Next) -> None:
        if ctx.text != "blocked":
            await call_next(ctx)

    @bot.on_message()
    async def handler(ctx: Context[Any]) -> None:
        ran.append(ctx.text)

    await run_events(bot, message_event("blocked"), message_event("open"))
    assert ran == ["open"]


async def test_middleware_can_skip_to_the_next_handler() -> None:
    ran: list[str] = []
    bot = Bot(client=offline_client())

    @bot.middleware
    async def skipper(ctx: Context[Any], call_next: Next) -> None:
        if ctx.handler_name and ctx.handler_name.endswith("first"):
            ctx.skip()
        await call_next(ctx)

    @bot.on_message()
    async def first(ctx: Context[Any]) -> None:
        ran.append("first")

    @bot.on_message()
    async def second(ctx: Context[Any]) -> None:
        ran.append("second")

    await run_events(bot, message_event("x"))
    assert ran == ["second"]
