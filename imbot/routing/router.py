"""Routers: register handlers with decorators; a bot is a router too.

A ``Router`` holds handlers, middleware, error handlers and startup/shutdown hooks, and
``bot.include_router(router)`` splits a bot into modules. Its decorators are observers, one
per event kind (``imbot.routing.observers``); each also has a method twin
(``@router.on_sent`` / ``router.add_sent_handler(fn)``) and returns the function unchanged.

Which handler serves an event is decided by ``imbot.routing.table`` (event type, then
commands, then filters in registration order) and run by ``imbot.routing.invoke``.
Registration freezes when the bot starts; after that it raises ``SetupError``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from imbot.errors import SetupError
from imbot.routing.connect import ConnectObserver
from imbot.routing.hooks import ErrorObserver, HookObserver, MiddlewareObserver
from imbot.routing.observers import (
    CommandObserver,
    DeliveredObserver,
    DeliveryFailedObserver,
    EventObserver,
    MessageObserver,
    SentObserver,
    TapbackObserver,
)
from imbot.routing.registrations import Registrations
from imbot.routing.turns import TurnObserver

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.models import TapbackKind
    from imbot.routing.handlers import HandlerSpec
    from imbot.types import FilterLike, Hook, Middleware

__all__ = ["Router"]

_Handler = Callable[["Context[Any]"], Awaitable[None]]


class Router:
    """A group of handlers, middleware and hooks; include it in a bot or another router.

    Example:
        >>> router = Router(name="billing")
        >>> @router.command("invoice")
        ... async def invoice(ctx, number: int):
        ...     await ctx.reply(f"Invoice {number} is paid.")
        >>> bot.include_router(router)

    Args:
        name: a name for logs and error messages.

    Attributes:
        on_message: incoming messages that pass the filters (bare or called).
        command: a command, by name (always called).
        on_turn: a burst of incoming messages, answered by one handler run (bare or
            called; see ``imbot.routing.turns``).
        on_connect: the human's first message after connecting, before it is routed
            (bare or called).
        on_tapback: the human's tapbacks, of some kinds or all (bare or called).
        on_sent: ``imessage.sent`` (bare or called).
        on_delivered: ``imessage.delivered`` (bare or called).
        on_delivery_failed: ``imessage.delivery_failed`` (bare or called).
        on_event: any event type matching a glob (always called).
        on_error: an exception type raised by this router's handlers (bare or called).
        middleware: code around each handler (bare or called).
        on_startup: a hook run at start (bare or called).
        on_shutdown: a hook run at shutdown (bare or called).
    """

    on_message: MessageObserver
    command: CommandObserver
    on_turn: TurnObserver
    on_connect: ConnectObserver
    on_tapback: TapbackObserver
    on_sent: SentObserver
    on_delivered: DeliveredObserver
    on_delivery_failed: DeliveryFailedObserver
    on_event: EventObserver
    on_error: ErrorObserver
    middleware: MiddlewareObserver
    on_startup: HookObserver
    on_shutdown: HookObserver

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self._registrations = registrations = Registrations(self.name)
        self.on_message = MessageObserver(registrations)
        self.command = CommandObserver(registrations)
        self.on_turn = TurnObserver(registrations)
        self.on_connect = ConnectObserver(registrations)
        self.on_tapback = TapbackObserver(registrations)
        self.on_sent = SentObserver(registrations, "sent")
        self.on_delivered = DeliveredObserver(registrations, "delivered")
        self.on_delivery_failed = DeliveryFailedObserver(registrations, "delivery_failed")
        self.on_event = EventObserver(registrations)
        self.on_error = ErrorObserver(registrations)
        self.middleware = MiddlewareObserver(registrations)
        self.on_startup = HookObserver(registrations, "startup")
        self.on_shutdown = HookObserver(registrations, "shutdown")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def registrations(self) -> Registrations:
        """What this router holds (read by the route table when the bot starts)."""
        return self._registrations

    # ------------------------------------------------------------------ method twins

    def add_message_handler(
        self,
        handler: _Handler,
        *filters: FilterLike,
        text: str | Sequence[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        contains: str | Sequence[str] | None = None,
        has_media: bool | None = None,
        sender: str | Sequence[str] | None = None,
    ) -> None:
        """Register a message handler; the method twin of ``on_message``.

        Example:
            >>> bot.add_message_handler(price, contains="price")
        """
        self.on_message.register(
            handler,
            *filters,
            text=text,
            regex=regex,
            contains=contains,
            has_media=has_media,
            sender=sender,
        )

    def add_command(
        self,
        handler: Callable[..., Awaitable[None]],
        name: str,
        *filters: FilterLike,
        aliases: Sequence[str] = (),
        hidden: bool | None = None,
    ) -> None:
        """Register a command handler; the method twin of ``command``.

        Example:
            >>> bot.add_command(remind, "remind", aliases=["r"])
            >>> bot.add_command(debug, "debug", hidden=True)   # not listed by help

        Raises:
            SetupError: the name is invalid, the handler is not async, or its parameters
                cannot take a message's words.
        """
        self.command.register(handler, name, *filters, aliases=aliases, hidden=hidden)

    def add_turn_handler(
        self,
        handler: _Handler,
        *filters: FilterLike,
        quiet: float = 0.75,
        max_wait: float = 2.0,
        max_messages: int = 8,
        max_chars: int = 4000,
        interrupt: bool = True,
    ) -> None:
        """Register a turn handler; the method twin of ``on_turn``.

        Example:
            >>> bot.add_turn_handler(chat, quiet=1.0)
        """
        self.on_turn.register(
            handler,
            *filters,
            quiet=quiet,
            max_wait=max_wait,
            max_messages=max_messages,
            max_chars=max_chars,
            interrupt=interrupt,
        )

    def add_connect_handler(self, handler: _Handler, *, when: FilterLike | None = None) -> None:
        """Register a handler for a new connection's first message; the twin of ``on_connect``.

        Example:
            >>> bot.add_connect_handler(greet)
        """
        self.on_connect.register(handler, when=when)

    def add_tapback_handler(
        self,
        handler: _Handler,
        kind: TapbackKind | str | Sequence[TapbackKind | str] | None = None,
        *,
        direction: Literal["inbound", "outbound", "any"] = "inbound",
        when: FilterLike | None = None,
    ) -> None:
        """Register a tapback handler; the method twin of ``on_tapback``.

        Example:
            >>> bot.add_tapback_handler(loved, "love")
        """
        self.on_tapback.register(handler, kind, direction=direction, when=when)

    def add_sent_handler(self, handler: _Handler, *, when: FilterLike | None = None) -> None:
        """Register an ``imessage.sent`` handler; the method twin of ``on_sent``."""
        self.on_sent.register(handler, when=when)

    def add_delivered_handler(self, handler: _Handler, *, when: FilterLike | None = None) -> None:
        """Register an ``imessage.delivered`` handler; the method twin of ``on_delivered``."""
        self.on_delivered.register(handler, when=when)

    def add_delivery_failed_handler(
        self, handler: _Handler, *, when: FilterLike | None = None
    ) -> None:
        """Register an ``imessage.delivery_failed`` handler; the twin of ``on_delivery_failed``."""
        self.on_delivery_failed.register(handler, when=when)

    def add_event_handler(
        self, handler: _Handler, pattern: str, *, when: FilterLike | None = None
    ) -> None:
        """Register a handler for event types matching a glob; the twin of ``on_event``.

        Example:
            >>> bot.add_event_handler(audit, "imessage.*")

        Raises:
            SetupError: ``pattern`` names no known event type and has no wildcard.
        """
        self.on_event.register(handler, pattern, when=when)

    def add_error_handler(
        self,
        handler: Callable[[Context[Any], Any], Awaitable[None]],
        exc_type: type[BaseException] = Exception,
    ) -> None:
        """Register an error handler; the method twin of ``on_error``.

        Example:
            >>> bot.add_error_handler(not_connected, NotConnected)

        Raises:
            SetupError: not an exception class, or one already has a handler here.
        """
        self.on_error.register(handler, exc_type)

    def add_middleware(self, middleware: Middleware) -> None:
        """Register a middleware; the method twin of ``middleware``."""
        self.middleware.register(middleware)

    def add_startup_hook(self, hook: Hook) -> None:
        """Register a startup hook; the method twin of ``on_startup``."""
        self.on_startup.register(hook)

    def add_shutdown_hook(self, hook: Hook) -> None:
        """Register a shutdown hook; the method twin of ``on_shutdown``."""
        self.on_shutdown.register(hook)

    # ------------------------------------------------------------------ composition

    def include_router(self, router: Router) -> None:
        """Add a router's handlers here, at this point in the registration order.

        Example:
            >>> from myapp.billing import router as billing
            >>> bot.include_router(billing)

        Raises:
            SetupError: the router is already included somewhere, or including it would
                make a cycle.
        """
        if not isinstance(router, Router):
            raise SetupError(f"include_router needs a Router, got {type(router).__name__}")
        mine, theirs = self._registrations, router.registrations
        mine.check_open(f"router {router.name}")
        if theirs.parent is not None:
            raise SetupError(f"{router.name} is already included in {theirs.parent.name}")
        node: Router | None = self
        while node is not None:
            if node is router:
                raise SetupError(f"including {router.name} in {self.name} would make a cycle")
            node = node.registrations.parent
        theirs.parent = self
        mine.entries.append(router)

    def walk(self) -> Iterable[Router]:
        """Yield this router and every included router, depth-first in inclusion order."""
        yield self
        for entry in self._registrations.entries:
            if isinstance(entry, Router):
                yield from entry.walk()

    def handlers(self) -> list[HandlerSpec]:
        """All handlers of this router and its included routers, in registration order."""
        found: list[HandlerSpec] = []
        for entry in self._registrations.entries:
            if isinstance(entry, Router):
                found.extend(entry.handlers())
            else:
                found.append(entry)
        return found

    def freeze(self) -> None:
        """Stop accepting registrations here and in included routers.

        Raises:
            SetupError: a decorator was created but never applied, usually one written
                without a required argument (``@bot.command`` instead of
                ``@bot.command("name")``).
        """
        for router in self.walk():
            pending = router.registrations.pending
            if pending:
                label = next(iter(pending.values()))
                raise SetupError(
                    f"{router.name}.{label} was called but never applied to a function. "
                    "Is a decorator missing its function, or its arguments? Write "
                    "@bot.on_message() / @bot.command('name') / @bot.on_event('imessage.*')"
                )
        for router in self.walk():
            router.registrations.frozen = True

    @property
    def frozen(self) -> bool:
        """Whether registration is closed (the bot has started)."""
        return self._registrations.frozen
