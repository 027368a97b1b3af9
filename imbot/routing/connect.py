"""``on_connect``: handlers for the human's first message after connecting.

On Inkbox a human connects by texting ``connect @handle`` to the router, which never
reaches the agent; the human's first message in the new thread is the agent's first event,
and the agent may not write before it. ``@bot.on_connect`` handlers run on that message, so
a greeting works against the real service.

Routing stays pure: the bot finds out whether a message is a connection's first (that may
take an API call) and hands the answer over as ``ctx.new_connection``. For such a message
the first ``on_connect`` handler whose filters pass runs (``ctx.skip()`` passes to the next
one), and then the message is routed as usual, to the commands and message handlers: the
greeting comes first, and the first message is still answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from imbot.errors import SetupError
from imbot.routing.observers import AnyHandler, Observer, _handler_spec, _when

if TYPE_CHECKING:
    from imbot.types import FilterLike, MessageHandlerT

__all__ = ["ConnectObserver"]


class ConnectObserver(Observer):
    """``on_connect``: the human's first message of a new connection, before routing.

    Example:
        >>> @bot.on_connect
        ... async def greet(ctx: Context[MessageReceived]) -> None:
        ...     await ctx.reply("Hi! I'm the booking bot. Text help to see what I can do.")
        >>> @bot.on_connect(when=Sender("+15555550142"))   # called, with a filter
        ... async def greet_the_boss(ctx): ...
    """

    __slots__ = ()

    @overload
    def __call__(self, handler: MessageHandlerT, /) -> MessageHandlerT: ...

    @overload
    def __call__(
        self, handler: None = None, /, *, when: FilterLike | None = None
    ) -> Callable[[MessageHandlerT], MessageHandlerT]: ...

    def __call__(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any:
        """Register a connect handler, bare or with ``when=`` (see ``register``)."""
        if handler is not None:
            if when is not None:
                raise SetupError("on_connect: give when= only in the called form")
            self.register(handler)
            return handler
        return self._registrations.deferred(
            "on_connect()", lambda func: self.register(func, when=when)
        )

    def register(self, handler: AnyHandler, *, when: FilterLike | None = None) -> None:
        """Register a handler for the first message of a new connection.

        It runs before the message is routed; the message then goes on to the commands
        and message handlers as usual (``ctx.new_connection`` stays ``True`` there, for a
        handler that would rather not answer it twice).

        Args:
            handler: ``async def handler(ctx)``.
            when: an extra filter that must pass.

        Raises:
            SetupError: the handler is not ``async`` or takes other parameters.
        """
        self._add(_handler_spec(handler, "connect", _when(when)))
