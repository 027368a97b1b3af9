"""Middleware: code that runs around the chosen handler.

A middleware is ``async def mw(ctx, call_next)``. It runs after routing chose a handler
(filters passed, command arguments bound) and before that handler; ``await call_next(ctx)``
runs the rest of the chain. Not calling it stops the event there; raising ``SkipHandler``
passes it to the next matching handler.

Example:
    >>> @bot.middleware
    ... async def timing(ctx, call_next):
    ...     started = time.perf_counter()
    ...     await call_next(ctx)
    ...     ctx.log.info("handled", seconds=time.perf_counter() - started)

The chain for each handler is built once when the bot starts: the bot's middleware first
(outermost), then each router's down to the handler's own. No closure is created per event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.types import Middleware, Next

__all__ = ["compose"]


class _Link:
    """One middleware bound to the rest of its chain."""

    __slots__ = ("middleware", "rest")

    def __init__(self, middleware: Middleware, rest: Next) -> None:
        self.middleware = middleware
        self.rest = rest

    def __call__(self, ctx: Context[Any]) -> Awaitable[None]:
        return self.middleware(ctx, self.rest)

    def __repr__(self) -> str:
        return f"<middleware {getattr(self.middleware, '__qualname__', self.middleware)!r}>"


def compose(middlewares: Sequence[Middleware], endpoint: Next) -> Next:
    """Wrap an endpoint in middlewares, the first one outermost.

    Example:
        >>> call = compose([auth, timing], handler)
        >>> await call(ctx)          # auth(ctx, timing-then-handler)

    Args:
        middlewares: outermost first.
        endpoint: the innermost call, usually the handler.

    Returns:
        A callable ``(ctx) -> Awaitable[None]`` running the whole chain; the endpoint itself
        when there are no middlewares.
    """
    call = endpoint
    for middleware in reversed(middlewares):
        call = _Link(middleware, call)
    return call
