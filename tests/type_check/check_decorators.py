"""Read by mypy only (``mypy --strict tests/type_check``): decorated handlers keep their types.

The ``# type: ignore[...]`` lines are the negative checks: under ``--strict`` an ignore that
is not needed is itself an error, so each one proves mypy rejects that line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, assert_type

from imbot import (
    AnyEvent,
    Bot,
    Contains,
    Context,
    DeliveryFailed,
    HasMedia,
    Message,
    MessageDelivered,
    MessageReceived,
    MessageSent,
    NotConnected,
    Reaction,
    ReactionReceived,
    Router,
    Text,
)
from imbot.models import MarkReadResult, MediaUpload
from imbot.types import Next


@asynccontextmanager
async def lifespan(bot: Bot) -> AsyncIterator[dict[str, Any]]:
    yield {"db": object()}


bot = Bot(lifespan=lifespan, command_prefixes=("/",), max_concurrency=8)
router = Router(name="extra")


@bot.on_message(Text("hi") | Contains("hello"), ~HasMedia(), sender="+15555550142")
async def greet(ctx: Context[MessageReceived]) -> None:
    assert_type(ctx.event, MessageReceived)
    assert_type(ctx.text, str)
    assert_type(ctx.message, Message | None)
    sent = await ctx.reply("hi", effect="confetti", thread=True)
    assert_type(sent, Message)
    async with ctx.typing():
        answer = await ctx.ask("name?", timeout=10)
    assert_type(answer, Message)
    assert_type(await ctx.mark_read(), MarkReadResult)
    assert_type(await ctx.upload(b"x"), MediaUpload)
    ctx.state["seen"] = True


async def _greet_keeps_its_signature(ctx: Context[MessageReceived]) -> None:
    assert_type(await greet(ctx), None)
    await greet(1)  # type: ignore[arg-type]
    await greet(ctx, 2)  # type: ignore[call-arg]


@bot.command("remind", aliases=["r"])
async def remind(ctx: Context[MessageReceived], minutes: int, *, text: str) -> None:
    """Remind you."""
    await ctx.reply(f"{minutes} {text}")


async def _call_remind() -> None:
    # The decorated command is still the plain function with its own parameters.
    await remind(_received(), 5, text="tea")
    await remind(_received(), "5", text="tea")  # type: ignore[arg-type]


def _received() -> Context[MessageReceived]:
    raise NotImplementedError


@bot.on_tapback("love")
async def loved(ctx: Context[ReactionReceived]) -> None:
    assert_type(ctx.event, ReactionReceived)
    assert_type(ctx.reaction, Reaction | None)
    assert_type(await ctx.react("like"), Reaction)


@bot.on_tapback
async def any_tapback(ctx: Context[ReactionReceived]) -> None: ...


@bot.on_tapback(direction="outbound")
async def own_tapback(ctx: Context[ReactionReceived]) -> None: ...


@bot.on_tapback(direction="sideways")  # type: ignore[call-overload, untyped-decorator]
async def no_such_direction(ctx: Context[ReactionReceived]) -> None: ...


@bot.on_connect
async def greet_on_connect(ctx: Context[MessageReceived]) -> None:
    assert_type(ctx.new_connection, bool)
    assert_type(await ctx.reply("hi", reply_to="m-1"), Message)


@bot.on_connect(when=lambda ctx: ctx.sender != "")
async def greet_some(ctx: Context[MessageReceived]) -> None: ...


@bot.on_sent
async def sent(ctx: Context[MessageSent]) -> None: ...


@bot.on_delivered()
async def delivered(ctx: Context[MessageDelivered]) -> None: ...


@bot.on_delivery_failed(when=lambda ctx: ctx.sender != "")
async def failed(ctx: Context[DeliveryFailed]) -> None: ...


@router.on_event("imessage.*")
async def audit(ctx: Context[AnyEvent]) -> None:
    ctx.skip()


@bot.on_message()
async def loose(ctx: Context[Any]) -> None: ...


@bot.on_message
async def bare(ctx: Context[MessageReceived]) -> None: ...


async def is_vip(ctx: Context[Any]) -> bool:
    return ctx.sender == "+15555550142"


@bot.on_message(is_vip)
async def vip(ctx: Context[MessageReceived]) -> None: ...


bot.on_message.register(vip, contains="hi")
bare_type: Callable[[Context[MessageReceived]], Coroutine[Any, Any, None]] = bare


@bot.on_error(NotConnected)
async def not_connected(ctx: Context[Any], exc: NotConnected) -> None:
    assert_type(exc.connect_command, str | None)


@bot.on_error
async def anything(ctx: Context[Any], exc: Exception) -> None: ...


@bot.middleware
async def timing(ctx: Context[Any], call_next: Next) -> None:
    await call_next(ctx)


@bot.on_startup
async def startup(b: Bot) -> None:
    b.state.cache = {}


bot.include_router(router)

# Handlers for the wrong event, or not async, are type errors.


@bot.on_message()  # type: ignore[type-var]
async def wrong_event(ctx: Context[MessageSent]) -> None: ...


@bot.on_sent  # type: ignore[type-var]
def not_async(ctx: Context[MessageSent]) -> None: ...


@bot.on_error(ValueError)  # type: ignore[arg-type]
async def wrong_exception(ctx: Context[Any], exc: KeyError) -> None: ...


handler_type: Callable[[Context[ReactionReceived]], Coroutine[Any, Any, None]] = loved
middleware_type: Callable[[Context[Any], Next], Coroutine[Any, Any, None]] = timing
hook_type: Callable[[Bot], Coroutine[Any, Any, None]] = startup
not_a_hook: Callable[[int], Coroutine[Any, Any, None]] = startup  # type: ignore[assignment]
