"""Routers: register handlers with decorators, then pick the one that serves an event.

A ``Router`` holds handlers, middleware, error handlers and startup/shutdown hooks; a bot
is a router too, and ``bot.include_router(router)`` splits a bot into modules. Every
decorator has a method twin (``@router.on_sent`` / ``router.add_sent_handler(fn)``) and
returns the function unchanged.

Routing, for one event:

1. **event type**: only handlers for that type are candidates (``on_event`` globs too);
2. **commands** (``imessage.received`` only): the first word names a command;
3. **filters**: the first handler, in registration order, whose filters all pass runs.

A handler may pass the event on with ``ctx.skip()`` (``raise SkipHandler``); the next
candidate is then tried. Outbound echoes never reach message handlers or commands.
Registration freezes when the bot starts; after that it raises ``SetupError``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from imbot.errors import CommandArgumentError, SetupError
from imbot.events import EVENT_TYPES
from imbot.log import debug_enabled, get_logger
from imbot.routing.commands import (
    CommandSignature,
    check_command_name,
    parse_command,
)
from imbot.routing.filters import Tapback, all_of, check, message_filters
from imbot.routing.handlers import (
    DECORATOR_FOR_EVENT,
    HandlerSpec,
    SkipHandler,
    check_arity,
    check_async,
    name_of,
    summary_of,
)
from imbot.routing.middleware import compose

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.models import TapbackKind
    from imbot.types import (
        CommandHandlerT,
        DeliveredHandlerT,
        DeliveryFailedHandlerT,
        ErrorHandler,
        ErrorHandlerT,
        EventHandlerT,
        FilterLike,
        Hook,
        HookT,
        MessageHandlerT,
        Middleware,
        MiddlewareT,
        SentHandlerT,
        TapbackHandlerT,
    )

__all__ = ["RouteTable", "Router", "unhandled_hint", "usage_prefix"]

_F = TypeVar("_F", bound=Callable[..., Any])
_E = TypeVar("_E", bound=BaseException)

_log = get_logger("imbot")

_HANDLER_EXAMPLE = "async def handler(ctx): ..."
_GLOB = re.compile(r"[*?\[]")


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
    """

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self._entries: list[HandlerSpec | Router] = []
        self._middlewares: list[Middleware] = []
        self._error_handlers: dict[type[BaseException], ErrorHandler] = {}
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._parent: Router | None = None
        self._frozen = False
        self._pending: dict[object, str] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # ------------------------------------------------------------------ plumbing

    def _check_open(self, what: str) -> None:
        if self._frozen:
            raise SetupError(
                f"cannot register {what} on {self.name}: registration froze when the bot "
                "started; register everything before bot.serve() / bot.run()"
            )

    def _deferred(self, label: str, register: Callable[[_F], None]) -> Callable[[_F], _F]:
        """A decorator that registers the function it is applied to, and returns it."""
        token = object()
        self._pending[token] = label

        def decorator(func: _F) -> _F:
            self._pending.pop(token, None)
            register(func)
            return func

        return decorator

    def _add(self, spec: HandlerSpec) -> None:
        self._check_open(f"handler {spec.name}")
        self._entries.append(spec)

    def _handler(
        self,
        func: Callable[..., Awaitable[None]],
        kind: str,
        filters: Iterable[FilterLike],
        *,
        pattern: str | None = None,
    ) -> HandlerSpec:
        check_async(func, "handler", _HANDLER_EXAMPLE)
        hint = " (to take command arguments, register it with @bot.command)" * (kind == "message")
        check_arity(func, 1, "handler", _HANDLER_EXAMPLE + hint)
        return HandlerSpec(
            func=func, kind=kind, name=name_of(func), filter=all_of(filters), pattern=pattern
        )

    @staticmethod
    def _when(when: FilterLike | None) -> list[FilterLike]:
        return [] if when is None else [when]

    # ------------------------------------------------------------------ messages

    def on_message(
        self,
        *filters: FilterLike,
        text: str | Sequence[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        contains: str | Sequence[str] | None = None,
        has_media: bool | None = None,
        sender: str | Sequence[str] | None = None,
    ) -> Callable[[MessageHandlerT], MessageHandlerT]:
        """Handle incoming messages (``imessage.received``) that pass all the filters.

        Always called with parentheses; with none of the filters it takes every message.

        Example:
            >>> @bot.on_message(contains="price")
            ... async def price(ctx: Context[MessageReceived]) -> None:
            ...     await ctx.reply("It's $5.")

        Args:
            filters: filters that must all pass (``Filter`` objects or ``(ctx) -> bool``).
            text: the whole text is one of these (case-insensitive).
            regex: the text matches this expression; the match is on ``ctx.match``.
            contains: the text contains one of these (case-insensitive).
            has_media: the message has (``True``) or has no (``False``) attachment.
            sender: the message comes from one of these E.164 numbers.
        """
        checks = self._message_checks(
            filters, text=text, regex=regex, contains=contains, has_media=has_media, sender=sender
        )
        return self._deferred(
            "on_message(...)", lambda func: self._add(self._handler(func, "message", checks))
        )

    def add_message_handler(
        self,
        handler: Callable[[Context[Any]], Awaitable[None]],
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
        checks = self._message_checks(
            filters, text=text, regex=regex, contains=contains, has_media=has_media, sender=sender
        )
        self._add(self._handler(handler, "message", checks))

    @staticmethod
    def _message_checks(
        filters: Sequence[FilterLike],
        *,
        text: str | Sequence[str] | None,
        regex: str | re.Pattern[str] | None,
        contains: str | Sequence[str] | None,
        has_media: bool | None,
        sender: str | Sequence[str] | None,
    ) -> list[FilterLike]:
        shortcuts = message_filters(
            text=text, regex=regex, contains=contains, has_media=has_media, sender=sender
        )
        return [*filters, *shortcuts]

    def command(
        self, name: str, *filters: FilterLike, aliases: Sequence[str] = ()
    ) -> Callable[[CommandHandlerT], CommandHandlerT]:
        """Handle a command: a message whose first word is ``name`` (after a prefix).

        The handler's extra parameters are the command's arguments (see ``imbot.routing.commands``);
        its docstring's first line is the summary ``bot.help_text()`` shows.

        Example:
            >>> @bot.command("remind", aliases=["r"])
            ... async def remind(ctx, minutes: int, *, text: str) -> None:
            ...     '''Remind you of something in a few minutes.'''
            ...     await ctx.reply(f"OK, in {minutes} min: {text}")

        Args:
            name: the command's name, without prefix; case-insensitive.
            filters: filters that must also pass.
            aliases: other names for the same command.
        """
        return self._deferred(
            f"command({name!r})",
            lambda func: self.add_command(func, name, *filters, aliases=aliases),
        )

    def add_command(
        self,
        handler: Callable[..., Awaitable[None]],
        name: str,
        *filters: FilterLike,
        aliases: Sequence[str] = (),
    ) -> None:
        """Register a command handler; the method twin of ``command``.

        Example:
            >>> bot.add_command(remind, "remind", aliases=["r"])

        Raises:
            SetupError: the name is invalid, the handler is not async, or its parameters
                cannot take a message's words.
        """
        check_async(handler, "command handler", "async def remind(ctx, minutes: int): ...")
        primary = check_command_name(name)
        if isinstance(aliases, str):
            raise SetupError(f"aliases must be a list of names, e.g. aliases=[{aliases!r}]")
        others = tuple(dict.fromkeys(check_command_name(a) for a in aliases))
        if primary in others:
            raise SetupError(f"command {primary!r} lists its own name among its aliases")
        signature = CommandSignature(handler)
        self._add(
            HandlerSpec(
                func=handler,
                kind="command",
                name=name_of(handler),
                filter=all_of(filters),
                command=signature,
                command_name=primary,
                aliases=others,
                summary=summary_of(handler),
            )
        )

    # ------------------------------------------------------------------ tapbacks

    @overload
    def on_tapback(self, kind: TapbackHandlerT, /) -> TapbackHandlerT: ...

    @overload
    def on_tapback(
        self,
        kind: TapbackKind | str | Sequence[TapbackKind | str] | None = None,
        /,
        *,
        when: FilterLike | None = None,
    ) -> Callable[[TapbackHandlerT], TapbackHandlerT]: ...

    def on_tapback(
        self,
        kind: Any = None,
        /,
        *,
        when: FilterLike | None = None,
    ) -> Any:
        """Handle tapbacks (``imessage.reaction_received``), optionally of some kinds only.

        Works bare (``@bot.on_tapback``) or called (``@bot.on_tapback("love")``).

        Example:
            >>> @bot.on_tapback("love")
            ... async def loved(ctx: Context[ReactionReceived]) -> None:
            ...     await ctx.reply("❤️ right back")

        Args:
            kind: a tapback kind or several (``"love"``, ``TapbackKind.LIKE``…); all when
                omitted.
            when: an extra filter that must pass.
        """
        if callable(kind) and not isinstance(kind, str):
            self.add_tapback_handler(kind)
            return kind
        return self._deferred(
            "on_tapback(...)", lambda func: self.add_tapback_handler(func, kind, when=when)
        )

    def add_tapback_handler(
        self,
        handler: Callable[[Context[Any]], Awaitable[None]],
        kind: TapbackKind | str | Sequence[TapbackKind | str] | None = None,
        *,
        when: FilterLike | None = None,
    ) -> None:
        """Register a tapback handler; the method twin of ``on_tapback``.

        Example:
            >>> bot.add_tapback_handler(loved, "love")
        """
        checks: list[FilterLike] = []
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            checks.append(Tapback(*kinds))
        self._add(self._handler(handler, "tapback", [*checks, *self._when(when)]))

    # ------------------------------------------------------------------ outbound lifecycle

    @overload
    def on_sent(self, handler: SentHandlerT, /) -> SentHandlerT: ...

    @overload
    def on_sent(
        self, handler: None = None, /, *, when: FilterLike | None = None
    ) -> Callable[[SentHandlerT], SentHandlerT]: ...

    def on_sent(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any:
        """Handle ``imessage.sent``: one of the bot's messages was accepted for delivery.

        Example:
            >>> @bot.on_sent
            ... async def sent(ctx: Context[MessageSent]) -> None:
            ...     ctx.log.info("sent", message_id=ctx.event.message.id)
        """
        return self._lifecycle("sent", handler, when)

    def add_sent_handler(
        self, handler: Callable[[Context[Any]], Awaitable[None]], *, when: FilterLike | None = None
    ) -> None:
        """Register an ``imessage.sent`` handler; the method twin of ``on_sent``.

        Example:
            >>> bot.add_sent_handler(sent)
        """
        self._add(self._handler(handler, "sent", self._when(when)))

    @overload
    def on_delivered(self, handler: DeliveredHandlerT, /) -> DeliveredHandlerT: ...

    @overload
    def on_delivered(
        self, handler: None = None, /, *, when: FilterLike | None = None
    ) -> Callable[[DeliveredHandlerT], DeliveredHandlerT]: ...

    def on_delivered(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any:
        """Handle ``imessage.delivered``: one of the bot's messages reached the phone.

        Example:
            >>> @bot.on_delivered
            ... async def delivered(ctx: Context[MessageDelivered]) -> None:
            ...     ctx.state["last_delivered"] = ctx.event.message.id
        """
        return self._lifecycle("delivered", handler, when)

    def add_delivered_handler(
        self, handler: Callable[[Context[Any]], Awaitable[None]], *, when: FilterLike | None = None
    ) -> None:
        """Register an ``imessage.delivered`` handler; the twin of ``on_delivered``.

        Example:
            >>> bot.add_delivered_handler(delivered)
        """
        self._add(self._handler(handler, "delivered", self._when(when)))

    @overload
    def on_delivery_failed(self, handler: DeliveryFailedHandlerT, /) -> DeliveryFailedHandlerT: ...

    @overload
    def on_delivery_failed(
        self, handler: None = None, /, *, when: FilterLike | None = None
    ) -> Callable[[DeliveryFailedHandlerT], DeliveryFailedHandlerT]: ...

    def on_delivery_failed(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any:
        """Handle ``imessage.delivery_failed``: one of the bot's messages did not arrive.

        Example:
            >>> @bot.on_delivery_failed
            ... async def failed(ctx: Context[DeliveryFailed]) -> None:
            ...     ctx.log.warning("not delivered", code=ctx.event.message.error_code)
        """
        return self._lifecycle("delivery_failed", handler, when)

    def add_delivery_failed_handler(
        self, handler: Callable[[Context[Any]], Awaitable[None]], *, when: FilterLike | None = None
    ) -> None:
        """Register an ``imessage.delivery_failed`` handler; the twin of ``on_delivery_failed``.

        Example:
            >>> bot.add_delivery_failed_handler(failed)
        """
        self._add(self._handler(handler, "delivery_failed", self._when(when)))

    def _lifecycle(self, kind: str, handler: Any, when: FilterLike | None) -> Any:
        if handler is not None:
            if when is not None:
                raise SetupError(f"on_{kind}: give when= only in the called form")
            self._add(self._handler(handler, kind, ()))
            return handler
        return self._deferred(
            f"on_{kind}()", lambda func: self._add(self._handler(func, kind, self._when(when)))
        )

    # ------------------------------------------------------------------ any event

    def on_event(
        self, pattern: str, *, when: FilterLike | None = None
    ) -> Callable[[EventHandlerT], EventHandlerT]:
        """Handle events whose type matches a glob, e.g. ``"imessage.*"``.

        These handlers take part in registration order with the others of the same event
        type. Events of types this version of imbot does not know reach them when fed with
        ``bot.feed`` (the webhook server acknowledges and logs those without feeding them).

        Example:
            >>> @bot.on_event("imessage.*")
            ... async def audit(ctx: Context[AnyEvent]) -> None:
            ...     ctx.log.info("event", type=ctx.event.event_type)
            ...     ctx.skip()              # let the specific handlers run too

        Args:
            pattern: a glob on ``event_type`` (``*``, ``?``, ``[...]``).
            when: an extra filter that must pass.
        """
        return self._deferred(
            f"on_event({pattern!r})",
            lambda func: self.add_event_handler(func, pattern, when=when),
        )

    def add_event_handler(
        self,
        handler: Callable[[Context[Any]], Awaitable[None]],
        pattern: str,
        *,
        when: FilterLike | None = None,
    ) -> None:
        """Register a handler for event types matching a glob; the twin of ``on_event``.

        Example:
            >>> bot.add_event_handler(audit, "imessage.*")

        Raises:
            SetupError: ``pattern`` names no known event type and has no wildcard
                (probably a typo).
        """
        if not isinstance(pattern, str) or not pattern:
            raise SetupError("on_event needs a pattern such as 'imessage.*'")
        if not _GLOB.search(pattern) and pattern not in EVENT_TYPES:
            raise SetupError(
                f"unknown event type {pattern!r}; known types: {', '.join(EVENT_TYPES)}. "
                "Use a glob (e.g. 'imessage.*') to also catch types added later"
            )
        self._add(self._handler(handler, "event", self._when(when), pattern=pattern))

    # ------------------------------------------------------------------ errors

    @overload
    def on_error(self, exc_type: ErrorHandlerT, /) -> ErrorHandlerT: ...

    @overload
    def on_error(
        self, exc_type: type[_E] = ..., /
    ) -> Callable[
        [Callable[[Context[Any], _E], Awaitable[None]]],
        Callable[[Context[Any], _E], Awaitable[None]],
    ]: ...

    def on_error(self, exc_type: Any = Exception, /) -> Any:
        """Handle exceptions of a type (and its subclasses) raised by this router's handlers.

        The most specific match wins (by the exception's MRO); a router's own error handlers
        come before its parents'. Works bare (any ``Exception``) or with a type.

        Example:
            >>> @bot.on_error(NotConnected)
            ... async def not_connected(ctx, exc: NotConnected) -> None:
            ...     ctx.log.info("human left", hint=exc.connect_command)

        Args:
            exc_type: the exception class to handle; ``Exception`` when omitted.
        """
        if not isinstance(exc_type, type):
            self.add_error_handler(exc_type)
            return exc_type
        return self._deferred(
            f"on_error({exc_type.__name__})",
            lambda func: self.add_error_handler(func, exc_type),
        )

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
        self._check_open(f"error handler {name_of(handler)}")
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            raise SetupError(f"on_error needs an Exception subclass, got {exc_type!r}")
        if issubclass(exc_type, SkipHandler):
            raise SetupError("SkipHandler is a signal, not an error; it cannot be handled")
        example = "async def on_error(ctx, exc): ..."
        check_async(handler, "error handler", example)
        check_arity(handler, 2, "error handler", example)
        if exc_type in self._error_handlers:
            raise SetupError(
                f"{self.name} already has an error handler for {exc_type.__name__}: "
                f"{name_of(self._error_handlers[exc_type])}"
            )
        self._error_handlers[exc_type] = handler

    # ------------------------------------------------------------------ middleware

    @overload
    def middleware(self, func: MiddlewareT, /) -> MiddlewareT: ...

    @overload
    def middleware(self, func: None = None, /) -> Callable[[MiddlewareT], MiddlewareT]: ...

    def middleware(self, func: Any = None, /) -> Any:
        """Register a middleware: ``async def mw(ctx, call_next)`` around each handler.

        Works bare or called. The bot's middleware wrap its routers' middleware.

        Example:
            >>> @bot.middleware
            ... async def only_known(ctx, call_next) -> None:
            ...     if ctx.sender in KNOWN:
            ...         await call_next(ctx)
        """
        if func is not None:
            self.add_middleware(func)
            return func
        return self._deferred("middleware()", self.add_middleware)

    def add_middleware(self, middleware: Middleware) -> None:
        """Register a middleware; the method twin of ``middleware``.

        Example:
            >>> bot.add_middleware(only_known)
        """
        self._check_open(f"middleware {name_of(middleware)}")
        example = "async def mw(ctx, call_next): await call_next(ctx)"
        check_async(middleware, "middleware", example)
        check_arity(middleware, 2, "middleware", example)
        self._middlewares.append(middleware)

    # ------------------------------------------------------------------ startup / shutdown

    @overload
    def on_startup(self, hook: HookT, /) -> HookT: ...

    @overload
    def on_startup(self, hook: None = None, /) -> Callable[[HookT], HookT]: ...

    def on_startup(self, hook: Any = None, /) -> Any:
        """Run ``async def hook(bot)`` when the bot starts, before any event is handled.

        A shortcut over ``Bot(lifespan=...)``; use one style or the other.

        Example:
            >>> @bot.on_startup
            ... async def connect_db(bot: Bot) -> None:
            ...     bot.state.db = await open_db()
        """
        if hook is not None:
            self.add_startup_hook(hook)
            return hook
        return self._deferred("on_startup()", self.add_startup_hook)

    def add_startup_hook(self, hook: Hook) -> None:
        """Register a startup hook; the method twin of ``on_startup``.

        Example:
            >>> bot.add_startup_hook(connect_db)
        """
        self._check_open(f"startup hook {name_of(hook)}")
        check_async(hook, "startup hook", "async def startup(bot): ...")
        check_arity(hook, 1, "startup hook", "async def startup(bot): ...")
        self._startup.append(hook)

    @overload
    def on_shutdown(self, hook: HookT, /) -> HookT: ...

    @overload
    def on_shutdown(self, hook: None = None, /) -> Callable[[HookT], HookT]: ...

    def on_shutdown(self, hook: Any = None, /) -> Any:
        """Run ``async def hook(bot)`` at shutdown, after in-flight handlers drained.

        Shutdown hooks run in reverse order of registration.

        Example:
            >>> @bot.on_shutdown
            ... async def close_db(bot: Bot) -> None:
            ...     await bot.state.db.close()
        """
        if hook is not None:
            self.add_shutdown_hook(hook)
            return hook
        return self._deferred("on_shutdown()", self.add_shutdown_hook)

    def add_shutdown_hook(self, hook: Hook) -> None:
        """Register a shutdown hook; the method twin of ``on_shutdown``.

        Example:
            >>> bot.add_shutdown_hook(close_db)
        """
        self._check_open(f"shutdown hook {name_of(hook)}")
        check_async(hook, "shutdown hook", "async def shutdown(bot): ...")
        check_arity(hook, 1, "shutdown hook", "async def shutdown(bot): ...")
        self._shutdown.append(hook)

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
        self._check_open(f"router {router.name}")
        if router._parent is not None:
            raise SetupError(f"{router.name} is already included in {router._parent.name}")
        node: Router | None = self
        while node is not None:
            if node is router:
                raise SetupError(f"including {router.name} in {self.name} would make a cycle")
            node = node._parent
        router._parent = self
        self._entries.append(router)

    def walk(self) -> Iterable[Router]:
        """Yield this router and every included router, depth-first in inclusion order."""
        yield self
        for entry in self._entries:
            if isinstance(entry, Router):
                yield from entry.walk()

    def handlers(self) -> list[HandlerSpec]:
        """All handlers of this router and its included routers, in registration order."""
        found: list[HandlerSpec] = []
        for entry in self._entries:
            if isinstance(entry, Router):
                found.extend(entry.handlers())
            else:
                found.append(entry)
        return found

    def freeze(self) -> None:
        """Stop accepting registrations here and in included routers.

        Raises:
            SetupError: a decorator was created but never applied, usually a decorator used
                without its parentheses (``@bot.on_message`` instead of ``@bot.on_message()``).
        """
        for router in self.walk():
            if router._pending:
                label = next(iter(router._pending.values()))
                raise SetupError(
                    f"{router.name}.{label} was called but never applied to a function. "
                    "Did you write the decorator without parentheses? Use "
                    "@bot.on_message() / @bot.command('name') / @bot.on_event('imessage.*')"
                )
        for router in self.walk():
            router._frozen = True

    @property
    def frozen(self) -> bool:
        """Whether registration is closed (the bot has started)."""
        return self._frozen


class RouteTable:
    """The routers' handlers compiled for fast matching; built once when the bot starts.

    Attributes:
        commands: handler by command name and alias.
        startup: startup hooks, in registration order.
        shutdown: shutdown hooks, in reverse registration order.
    """

    __slots__ = (
        "_by_type",
        "_events",
        "_inbound",
        "_outbound",
        "_prefixes",
        "_unknown",
        "_usage_prefix",
        "commands",
        "shutdown",
        "startup",
    )

    def __init__(self, root: Router, *, prefixes: Sequence[str]) -> None:
        """Compile a router tree.

        Args:
            root: the bot (or top router).
            prefixes: accepted command prefixes, e.g. ``("/", "")``.

        Raises:
            SetupError: two handlers claim the same command name.
        """
        if isinstance(prefixes, str) or not prefixes:
            raise SetupError('command_prefixes must be a non-empty sequence, e.g. ("/", "")')
        ordered = sorted(dict.fromkeys(prefixes), key=len, reverse=True)
        self._prefixes = tuple(ordered)
        self._usage_prefix = usage_prefix(ordered)
        specs: list[HandlerSpec] = []
        self.startup: list[Hook] = []
        shutdown: list[Hook] = []
        self._compile(root, [], (), specs, shutdown)
        self.shutdown = list(reversed(shutdown))
        self.commands: dict[str, HandlerSpec] = {}
        for spec in specs:
            if spec.command_name is None:
                continue
            for name in (spec.command_name, *spec.aliases):
                other = self.commands.get(name)
                if other is not None:
                    raise SetupError(
                        f"command {name!r} is registered twice: by {other.name} and {spec.name}"
                    )
                self.commands[name] = spec
        plain = [s for s in specs if s.command_name is None]
        self._by_type = {t: tuple(s for s in plain if s.serves(t)) for t in EVENT_TYPES}
        received = self._by_type["imessage.received"]
        self._inbound = received
        self._outbound = tuple(s for s in received if s.kind == "event")
        self._events = tuple(s for s in plain if s.kind == "event")
        self._unknown: dict[str, tuple[HandlerSpec, ...]] = {}

    def _compile(
        self,
        router: Router,
        middlewares: list[Middleware],
        errors: tuple[dict[type[BaseException], ErrorHandler], ...],
        specs: list[HandlerSpec],
        shutdown: list[Hook],
    ) -> None:
        chain = [*middlewares, *router._middlewares]
        handlers = (router._error_handlers, *errors)
        self.startup.extend(router._startup)
        shutdown.extend(router._shutdown)
        for entry in router._entries:
            if isinstance(entry, Router):
                self._compile(entry, chain, handlers, specs, shutdown)
                continue
            entry.call = compose(chain, entry.endpoint)
            entry.error_handlers = handlers
            specs.append(entry)

    def usage(self, spec: HandlerSpec) -> str:
        """The usage line of a command handler, with the prefix users should type."""
        assert spec.command is not None and spec.command_name is not None
        return spec.command.usage(spec.command_name, self._usage_prefix)

    @property
    def usage_prefix(self) -> str:
        """The prefix shown in usage lines and help: ``""`` when prefixes are optional."""
        return self._usage_prefix

    def candidates(self, event_type: str) -> tuple[HandlerSpec, ...]:
        """The non-command handlers that serve an event type, in registration order."""
        found = self._by_type.get(event_type)
        if found is None:
            found = self._unknown.get(event_type)
            if found is None:
                found = tuple(s for s in self._events if s.serves(event_type))
                if len(self._unknown) < 256:  # bounded: event types come from the network
                    self._unknown[event_type] = found
        return found

    async def dispatch(self, ctx: Context[Any]) -> bool:
        """Route one event to the first handler that takes it, and run that handler.

        Handler exceptions go to the error handlers and never escape.

        Args:
            ctx: a fresh context for the event.

        Returns:
            ``True`` when a handler ran (and did not skip), ``False`` when none took it.
        """
        event = ctx.event
        event_type = event.event_type
        if event_type == "imessage.received":
            message = event.data.message
            if message.direction == "outbound":
                # An echo of the bot's own send: never a trigger for message handlers.
                candidates = self._outbound
            else:
                candidates = self._inbound
                if self.commands:
                    parsed = parse_command(message.content, self._prefixes)
                    if parsed is not None:
                        spec = self.commands.get(parsed[0])
                        if spec is not None and await self._attempt(ctx, spec, parsed):
                            return True
        else:
            candidates = self.candidates(event_type)
        for spec in candidates:
            if await self._attempt(ctx, spec, None):
                return True
        return False

    async def _attempt(
        self, ctx: Context[Any], spec: HandlerSpec, parsed: tuple[str, str] | None
    ) -> bool:
        try:
            if ctx._state is None and ctx._bot._state_loads_by_awaiting:
                # ctx.state cannot await: a store that cannot load without awaiting is
                # loaded before the filters (a filter may route on state). Others load on
                # first use, in ctx.state itself.
                await ctx._load_state()
            flt = spec.filter
            if flt is not None and not await check(flt, ctx):
                return False
            ctx.handler_name = spec.name
            ctx._log = None  # rebind with the handler's name if a filter logged already
            if parsed is not None:
                ctx.command = parsed[0]
                assert spec.command is not None
                try:
                    ctx.args = spec.command.bind(parsed[1])
                except CommandArgumentError as exc:
                    if debug_enabled():
                        _log.debug("bad command arguments", command=parsed[0], reason=exc.reason)
                    await ctx.reply(f"Usage: {self.usage(spec)}\n{exc.reason}")
                    return True
            assert spec.call is not None
            await spec.call(ctx)
        except SkipHandler:
            ctx.command = None
            ctx.args = {}
            ctx.handler_name = None
            return False
        except Exception as exc:
            await self._failed(ctx, spec, exc)
        return True

    async def _failed(self, ctx: Context[Any], spec: HandlerSpec, exc: Exception) -> None:
        event = ctx.event
        for table in spec.error_handlers:
            for cls in type(exc).__mro__:
                handler = table.get(cls)
                if handler is None:
                    continue
                _log.warning(
                    "handler raised; passing it to the error handler",
                    handler=spec.name,
                    error_handler=name_of(handler),
                    error=repr(exc),
                    event_id=event.id,
                    event_type=event.event_type,
                    conversation_id=ctx.conversation_id,
                )
                try:
                    await handler(ctx, exc)
                except Exception as again:
                    _log.error(
                        "error handler raised",
                        error_handler=name_of(handler),
                        event_id=event.id,
                        exc_info=again,
                    )
                    ctx.bot._unhandled_error(ctx, again)
                return
        _log.error(
            "handler raised",
            handler=spec.name,
            event_id=event.id,
            event_type=event.event_type,
            conversation_id=ctx.conversation_id,
            hint="add @bot.on_error(...) to handle it",
            exc_info=exc,
        )
        ctx.bot._unhandled_error(ctx, exc)


def usage_prefix(prefixes: Sequence[str]) -> str:
    """The prefix shown in usage lines and help: ``""`` when optional, else the shortest.

    Ties go to the first given, so ``("/", "!")`` shows ``/`` in help and in usage replies.
    """
    return "" if "" in prefixes else min(prefixes, key=len)


def unhandled_hint(event_type: str) -> str:
    """The decorator that would have handled an event type, for the unhandled-event log."""
    return DECORATOR_FOR_EVENT.get(event_type, f"@bot.on_event({event_type!r})")
