"""The callable shapes imbot accepts, named in one place.

These are aliases for type checkers; at run time they are plain strings and cost nothing.

| alias | shape | registered with |
|---|---|---|
| ``Handler`` | ``async (ctx) -> None`` | ``on_message``, ``on_tapback``, ``on_sent``… |
| ``CommandHandler`` | ``async (ctx, *args) -> None`` | ``command`` |
| ``FilterFunc`` | ``(ctx) -> bool`` or ``async (ctx) -> bool`` | any ``*filters`` / ``when=`` |
| ``Middleware`` | ``async (ctx, call_next) -> None`` | ``middleware`` |
| ``Next`` | ``async (ctx) -> None`` | what a middleware calls to go on |
| ``ErrorHandler`` | ``async (ctx, exc) -> None`` | ``on_error`` |
| ``ErrorListener`` | ``(ctx, exc) -> None`` (sync) | ``Bot.add_error_listener`` |
| ``Hook`` | ``async (bot) -> None`` | ``on_startup``, ``on_shutdown`` |
| ``Lifespan`` | ``(bot) -> async context manager`` | ``Bot(lifespan=...)`` |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Concatenate, TypeAlias, TypeVar

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.bot.context import Context
    from imbot.events import (
        AnyEvent,
        DeliveryFailed,
        MessageDelivered,
        MessageReceived,
        MessageSent,
        ReactionReceived,
    )
    from imbot.routing.filters import Filter

__all__ = [
    "CommandHandler",
    "CommandHandlerT",
    "DeliveredHandlerT",
    "DeliveryFailedHandlerT",
    "ErrorHandler",
    "ErrorHandlerT",
    "ErrorListener",
    "EventHandlerT",
    "FilterFunc",
    "FilterLike",
    "Handler",
    "Hook",
    "HookT",
    "Lifespan",
    "MessageHandlerT",
    "Middleware",
    "MiddlewareT",
    "Next",
    "SentHandlerT",
    "TapbackHandlerT",
]

Handler: TypeAlias = "Callable[[Context[Any]], Awaitable[None]]"
"""An event handler: ``async def handler(ctx) -> None``."""

CommandHandler: TypeAlias = "Callable[Concatenate[Context[MessageReceived], ...], Awaitable[None]]"
"""A command handler: ``ctx`` first, then the command's typed arguments."""

FilterFunc: TypeAlias = "Callable[[Context[Any]], bool | Awaitable[bool]]"
"""A plain function used as a filter: sync or async, ``(ctx) -> bool``."""

FilterLike: TypeAlias = "Filter | Callable[[Context[Any]], bool | Awaitable[bool]]"
"""Anything accepted where a filter is expected: a ``Filter`` or a ``FilterFunc``."""

Next: TypeAlias = "Callable[[Context[Any]], Awaitable[None]]"
"""What a middleware awaits to run the rest of the chain: ``await call_next(ctx)``."""

Middleware: TypeAlias = "Callable[[Context[Any], Next], Awaitable[None]]"
"""A middleware: ``async def mw(ctx, call_next) -> None``."""

ErrorHandler: TypeAlias = "Callable[[Context[Any], Any], Awaitable[None]]"
"""An error handler: ``async def on_error(ctx, exc) -> None``."""

ErrorListener: TypeAlias = "Callable[[Context[Any], BaseException], None]"
"""An error listener: ``def listener(ctx, exc) -> None``, told of errors nobody handled."""

Hook: TypeAlias = "Callable[[Bot], Awaitable[None]]"
"""A startup or shutdown hook: ``async def hook(bot) -> None``."""

Lifespan: TypeAlias = "Callable[[Bot], AbstractAsyncContextManager[Mapping[str, Any] | None]]"
"""A lifespan: called with the bot, entered at start, exited at shutdown.

What it yields (a mapping, or ``None``) is set on ``bot.state``.
"""

# The decorators are typed with these so that a decorated function keeps its exact type,
# and a handler annotated for the wrong event (say ``Context[MessageSent]`` under
# ``on_message``) is a type error.
MessageHandlerT = TypeVar(
    "MessageHandlerT", bound="Callable[[Context[MessageReceived]], Awaitable[None]]"
)
CommandHandlerT = TypeVar(
    "CommandHandlerT",
    bound="Callable[Concatenate[Context[MessageReceived], ...], Awaitable[None]]",
)
TapbackHandlerT = TypeVar(
    "TapbackHandlerT", bound="Callable[[Context[ReactionReceived]], Awaitable[None]]"
)
SentHandlerT = TypeVar("SentHandlerT", bound="Callable[[Context[MessageSent]], Awaitable[None]]")
DeliveredHandlerT = TypeVar(
    "DeliveredHandlerT", bound="Callable[[Context[MessageDelivered]], Awaitable[None]]"
)
DeliveryFailedHandlerT = TypeVar(
    "DeliveryFailedHandlerT", bound="Callable[[Context[DeliveryFailed]], Awaitable[None]]"
)
EventHandlerT = TypeVar("EventHandlerT", bound="Callable[[Context[AnyEvent]], Awaitable[None]]")
ErrorHandlerT = TypeVar("ErrorHandlerT", bound="Callable[[Context[Any], Any], Awaitable[None]]")
MiddlewareT = TypeVar("MiddlewareT", bound="Callable[[Context[Any], Next], Awaitable[None]]")
HookT = TypeVar("HookT", bound="Callable[[Bot], Awaitable[None]]")
