"""Observers: one object per kind of registration, giving both the decorator and ``register()``.

A router creates one observer per event kind, as aiogram does: ``router.on_message`` is a
``MessageObserver``, and ``@router.on_message(...)``, ``router.on_message.register(fn, ...)``
and the method twin ``router.add_message_handler(fn, ...)`` all go through the same code.

One convention for every decorator: a decorator whose arguments are all optional works bare
(``@bot.on_tapback``) or called (``@bot.on_tapback("love")``); one that needs a name or a
pattern (``command``, ``on_event``) is always called. Each returns the function unchanged.

``on_message`` takes filters positionally, and a plain async function may be a filter, so
its bare form is recognised by shape: one ``async def`` that is not annotated to return
``bool``, and nothing else. Wrap an async filter used alone in ``as_filter`` (or annotate it
``-> bool``) so it is not taken for the handler.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from imbot.errors import SetupError
from imbot.events import EVENT_TYPES
from imbot.routing.commands import CommandSignature, check_command_name
from imbot.routing.filters import Filter, Tapback, all_of, message_filters
from imbot.routing.handlers import HandlerSpec, check_arity, check_async, name_of, summary_of

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.models import TapbackKind
    from imbot.routing.registrations import Registrations
    from imbot.types import (
        CommandHandlerT,
        DeliveredHandlerT,
        DeliveryFailedHandlerT,
        EventHandlerT,
        FilterLike,
        MessageHandlerT,
        SentHandlerT,
        TapbackHandlerT,
    )

__all__ = [
    "GREETING_COMMAND",
    "CommandObserver",
    "DeliveredObserver",
    "DeliveryFailedObserver",
    "EventObserver",
    "MessageObserver",
    "Observer",
    "OutboundObserver",
    "SentObserver",
    "TapbackObserver",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_E = TypeVar("_E", bound=BaseException)

_HANDLER_EXAMPLE = "async def handler(ctx): ..."

GREETING_COMMAND = "connect"
"""The command the router's connect text names: hidden from the help unless ``hidden=False``."""
_GLOB = re.compile(r"[*?\[]")

AnyHandler = Callable[["Context[Any]"], Awaitable[None]]


def _handler_spec(
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


def _when(when: FilterLike | None) -> list[FilterLike]:
    return [] if when is None else [when]


def _is_async(obj: object) -> bool:
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - objects with an async __call__
    )


def _returns_bool(func: Callable[..., Any]) -> bool:
    """Whether a function is annotated to return ``bool`` (a filter, not a handler)."""
    try:
        annotation = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return False
    return annotation is bool or "bool" in str(annotation)


class Observer:
    """Base of the observers: holds the router's registrations."""

    __slots__ = ("_registrations",)

    def __init__(self, registrations: Registrations) -> None:
        """Observe one router's registrations."""
        self._registrations = registrations

    def _add(self, spec: HandlerSpec) -> None:
        self._registrations.add(spec, f"handler {spec.name}")


class MessageObserver(Observer):
    """``on_message``: incoming messages (``imessage.received``) that pass all the filters.

    Example:
        >>> @bot.on_message(contains="price")
        ... async def price(ctx: Context[MessageReceived]) -> None:
        ...     await ctx.reply("It's $5.")
        >>> @bot.on_message                     # bare: every message
        ... async def echo(ctx): ...
    """

    __slots__ = ()

    @overload
    def __call__(self, handler: MessageHandlerT, /) -> MessageHandlerT: ...

    @overload
    def __call__(
        self,
        *filters: FilterLike,
        text: str | Sequence[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        contains: str | Sequence[str] | None = None,
        has_media: bool | None = None,
        sender: str | Sequence[str] | None = None,
    ) -> Callable[[MessageHandlerT], MessageHandlerT]: ...

    def __call__(self, *filters: Any, **shortcuts: Any) -> Any:
        """Register a message handler, bare or with filters (see ``register``)."""
        if len(filters) == 1 and not shortcuts:
            only = filters[0]
            if _is_async(only) and not isinstance(only, Filter) and not _returns_bool(only):
                self.register(only)
                return only
        checks = [*filters, *message_filters(**shortcuts)]
        return self._registrations.deferred(
            "on_message(...)", lambda func: self._add(_handler_spec(func, "message", checks))
        )

    def register(
        self,
        handler: AnyHandler,
        *filters: FilterLike,
        text: str | Sequence[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        contains: str | Sequence[str] | None = None,
        has_media: bool | None = None,
        sender: str | Sequence[str] | None = None,
    ) -> None:
        """Register a message handler.

        Args:
            handler: ``async def handler(ctx)``.
            filters: filters that must all pass (``Filter`` objects or ``(ctx) -> bool``).
            text: the whole text is one of these (case-insensitive).
            regex: the text matches this expression; the match is on ``ctx.match``.
            contains: the text contains one of these (case-insensitive).
            has_media: the message has (``True``) or has no (``False``) attachment.
            sender: the message comes from one of these E.164 numbers.

        Raises:
            SetupError: the handler is not ``async``, takes other parameters, or a
                shortcut is invalid.
        """
        shortcuts = message_filters(
            text=text, regex=regex, contains=contains, has_media=has_media, sender=sender
        )
        self._add(_handler_spec(handler, "message", [*filters, *shortcuts]))


class CommandObserver(Observer):
    """``command``: a message whose first word is the command's name (after a prefix).

    The handler's extra parameters are the command's arguments (see ``imbot.routing.commands``);
    its docstring's first line is the summary ``bot.help_text()`` shows. A hidden command
    works but is left out of the help: ``connect`` (the greeting) is hidden unless
    ``hidden=False``.

    Example:
        >>> @bot.command("remind", aliases=["r"])
        ... async def remind(ctx, minutes: int, *, text: str) -> None:
        ...     '''Remind you of something in a few minutes.'''
        ...     await ctx.reply(f"OK, in {minutes} min: {text}")
        >>> @bot.command("debug", hidden=True)   # works, not listed by help
        ... async def debug(ctx) -> None: ...
    """

    __slots__ = ()

    def __call__(
        self,
        name: str,
        *filters: FilterLike,
        aliases: Sequence[str] = (),
        hidden: bool | None = None,
    ) -> Callable[[CommandHandlerT], CommandHandlerT]:
        """Register a command handler under ``name`` (see ``register``)."""
        if callable(name):
            raise SetupError(
                f"@bot.command needs the command's name: @bot.command({name_of(name)!r}) "
                "or @bot.command('name')"
            )
        return self._registrations.deferred(
            f"command({name!r})",
            lambda func: self.register(func, name, *filters, aliases=aliases, hidden=hidden),
        )

    def register(
        self,
        handler: Callable[..., Awaitable[None]],
        name: str,
        *filters: FilterLike,
        aliases: Sequence[str] = (),
        hidden: bool | None = None,
    ) -> None:
        """Register a command handler.

        Args:
            handler: ``async def handler(ctx, *arguments)``.
            name: the command's name, without prefix; case-insensitive.
            filters: filters that must also pass.
            aliases: other names for the same command.
            hidden: leave the command out of ``bot.help_text()``. By default only a
                command named ``connect`` is hidden: it answers the router's connect text
                (the greeting), which the human never types to the bot.

        Raises:
            SetupError: the name is invalid, the handler is not async, or its parameters
                cannot take a message's words.
        """
        check_async(handler, "command handler", "async def remind(ctx, minutes: int): ...")
        primary = check_command_name(name)
        if hidden is not None and not isinstance(hidden, bool):
            raise SetupError(f"hidden must be True or False, got {hidden!r}")
        if isinstance(aliases, str):
            raise SetupError(f"aliases must be a list of names, e.g. aliases=[{aliases!r}]")
        others = tuple(dict.fromkeys(check_command_name(a) for a in aliases))
        if primary in others:
            raise SetupError(f"command {primary!r} lists its own name among its aliases")
        self._add(
            HandlerSpec(
                func=handler,
                kind="command",
                name=name_of(handler),
                filter=all_of(filters),
                command=CommandSignature(handler),
                command_name=primary,
                aliases=others,
                summary=summary_of(handler),
                hidden=primary == GREETING_COMMAND if hidden is None else hidden,
            )
        )


def _tapbacks_going(direction: str) -> Callable[[Context[Any]], bool]:
    return lambda ctx: ctx.reaction is not None and ctx.reaction.direction == direction


class TapbackObserver(Observer):
    """``on_tapback``: tapbacks (``imessage.reaction_received``), optionally of some kinds.

    The human's tapbacks only, unless ``direction`` says otherwise: the bot's own come back
    as outbound echoes, which a handler that tapbacks in answer would answer forever.

    Example:
        >>> @bot.on_tapback("love")
        ... async def loved(ctx: Context[ReactionReceived]) -> None:
        ...     await ctx.reply("❤️ right back")
        >>> @bot.on_tapback                     # bare: every tapback from the human
        ... async def any_tapback(ctx): ...
    """

    __slots__ = ()

    @overload
    def __call__(self, kind: TapbackHandlerT, /) -> TapbackHandlerT: ...

    @overload
    def __call__(
        self,
        kind: TapbackKind | str | Sequence[TapbackKind | str] | None = None,
        /,
        *,
        direction: Literal["inbound", "outbound", "any"] = "inbound",
        when: FilterLike | None = None,
    ) -> Callable[[TapbackHandlerT], TapbackHandlerT]: ...

    def __call__(
        self,
        kind: Any = None,
        /,
        *,
        direction: Literal["inbound", "outbound", "any"] = "inbound",
        when: FilterLike | None = None,
    ) -> Any:
        """Register a tapback handler, bare or for some kinds (see ``register``)."""
        if callable(kind) and not isinstance(kind, str):
            self.register(kind)
            return kind
        return self._registrations.deferred(
            "on_tapback(...)",
            lambda func: self.register(func, kind, direction=direction, when=when),
        )

    def register(
        self,
        handler: AnyHandler,
        kind: TapbackKind | str | Sequence[TapbackKind | str] | None = None,
        *,
        direction: Literal["inbound", "outbound", "any"] = "inbound",
        when: FilterLike | None = None,
    ) -> None:
        """Register a tapback handler.

        Args:
            handler: ``async def handler(ctx)``.
            kind: a tapback kind or several (``"love"``, ``TapbackKind.LIKE``…); all when
                omitted.
            direction: ``"inbound"`` (the human's tapbacks, the default), ``"outbound"``
                (echoes of the bot's own) or ``"any"``.
            when: an extra filter that must pass.

        Raises:
            SetupError: ``direction`` is not one of the three.
        """
        if direction not in ("inbound", "outbound", "any"):
            raise SetupError(
                f"on_tapback: direction must be 'inbound', 'outbound' or 'any', got {direction!r}"
            )
        checks: list[FilterLike] = []
        if direction != "any":
            checks.append(_tapbacks_going(direction))
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            checks.append(Tapback(*kinds))
        self._add(_handler_spec(handler, "tapback", [*checks, *_when(when)]))


class OutboundObserver(Observer):
    """``on_sent``, ``on_delivered``, ``on_delivery_failed``: what became of the bot's sends.

    Example:
        >>> @bot.on_delivery_failed
        ... async def failed(ctx: Context[DeliveryFailed]) -> None:
        ...     ctx.log.warning("not delivered", code=ctx.event.message.error_code)
    """

    __slots__ = ("_kind",)

    def __init__(self, registrations: Registrations, kind: str) -> None:
        """Observe one outbound kind: ``sent``, ``delivered`` or ``delivery_failed``."""
        super().__init__(registrations)
        self._kind = kind

    def __call__(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any:
        """Register a handler, bare or with ``when=`` (see ``register``)."""
        if handler is not None:
            if when is not None:
                raise SetupError(f"on_{self._kind}: give when= only in the called form")
            self.register(handler)
            return handler
        return self._registrations.deferred(
            f"on_{self._kind}()", lambda func: self.register(func, when=when)
        )

    def register(self, handler: AnyHandler, *, when: FilterLike | None = None) -> None:
        """Register a handler.

        Args:
            handler: ``async def handler(ctx)``.
            when: an extra filter that must pass.
        """
        self._add(_handler_spec(handler, self._kind, _when(when)))


class SentObserver(OutboundObserver):
    """``on_sent``: one of the bot's messages was accepted for delivery (``imessage.sent``)."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __call__(self, handler: SentHandlerT, /) -> SentHandlerT: ...

        @overload
        def __call__(
            self, handler: None = None, /, *, when: FilterLike | None = None
        ) -> Callable[[SentHandlerT], SentHandlerT]: ...

        def __call__(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any: ...


class DeliveredObserver(OutboundObserver):
    """``on_delivered``: one of the bot's messages reached the phone (``imessage.delivered``)."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __call__(self, handler: DeliveredHandlerT, /) -> DeliveredHandlerT: ...

        @overload
        def __call__(
            self, handler: None = None, /, *, when: FilterLike | None = None
        ) -> Callable[[DeliveredHandlerT], DeliveredHandlerT]: ...

        def __call__(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any: ...


class DeliveryFailedObserver(OutboundObserver):
    """``on_delivery_failed``: one of the bot's messages did not arrive."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __call__(self, handler: DeliveryFailedHandlerT, /) -> DeliveryFailedHandlerT: ...

        @overload
        def __call__(
            self, handler: None = None, /, *, when: FilterLike | None = None
        ) -> Callable[[DeliveryFailedHandlerT], DeliveryFailedHandlerT]: ...

        def __call__(self, handler: Any = None, /, *, when: FilterLike | None = None) -> Any: ...


class EventObserver(Observer):
    """``on_event``: events whose type matches a glob, e.g. ``"imessage.*"``.

    These handlers take part in registration order with the others of the same event type.
    Events of types this version of imbot does not know reach them when fed with
    ``bot.feed`` (the webhook server acknowledges and logs those without feeding them).

    Example:
        >>> @bot.on_event("imessage.*")
        ... async def audit(ctx: Context[AnyEvent]) -> None:
        ...     ctx.log.info("event", type=ctx.event.event_type)
        ...     ctx.skip()              # let the specific handlers run too
    """

    __slots__ = ()

    def __call__(
        self, pattern: str, *, when: FilterLike | None = None
    ) -> Callable[[EventHandlerT], EventHandlerT]:
        """Register a handler for event types matching ``pattern`` (see ``register``)."""
        if callable(pattern):
            raise SetupError("@bot.on_event needs a pattern: @bot.on_event('imessage.*')")
        return self._registrations.deferred(
            f"on_event({pattern!r})", lambda func: self.register(func, pattern, when=when)
        )

    def register(
        self, handler: AnyHandler, pattern: str, *, when: FilterLike | None = None
    ) -> None:
        """Register a handler for event types matching a glob.

        Args:
            handler: ``async def handler(ctx)``.
            pattern: a glob on ``event_type`` (``*``, ``?``, ``[...]``).
            when: an extra filter that must pass.

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
        self._add(_handler_spec(handler, "event", _when(when), pattern=pattern))
