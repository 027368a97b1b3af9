"""The handler record: a callable with its filters and call plan, checked at registration.

Everything about a handler that can be known before the first event is worked out here,
once: that it is ``async``, that its parameters fit, which event types it serves, how to
call it. Routing then only evaluates filters and calls.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from imbot.errors import SetupError, SkipHandler  # SkipHandler: kept importable from here
from imbot.routing.commands import CommandSignature

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.routing.filters import Filter
    from imbot.types import ErrorHandler, Next

__all__ = [
    "DECORATOR_FOR_EVENT",
    "EVENT_TYPE_OF_KIND",
    "HandlerSpec",
    "SkipHandler",
    "check_arity",
    "check_async",
    "name_of",
    "summary_of",
]

EVENT_TYPE_OF_KIND: Final = {
    "message": "imessage.received",
    "command": "imessage.received",
    "tapback": "imessage.reaction_received",
    "sent": "imessage.sent",
    "delivered": "imessage.delivered",
    "delivery_failed": "imessage.delivery_failed",
}
"""The event type each kind of handler serves (``event`` handlers match a glob instead)."""

DECORATOR_FOR_EVENT: Final = {
    "imessage.received": "@bot.on_message() or @bot.command(...)",
    "imessage.reaction_received": "@bot.on_tapback",
    "imessage.sent": "@bot.on_sent",
    "imessage.delivered": "@bot.on_delivered",
    "imessage.delivery_failed": "@bot.on_delivery_failed",
}
"""The decorator that would handle each event type; unhandled-event logs name it."""


def name_of(func: Callable[..., Any]) -> str:
    """Return a readable name for a callable (its qualified name when it has one)."""
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


def check_async(func: object, what: str, example: str) -> None:
    """Require an ``async def`` function (or an object with an ``async def __call__``).

    Args:
        func: the callable being registered.
        what: what it is registered as, e.g. ``"handler"``.
        example: a one-line example of the right shape, for the error message.

    Raises:
        SetupError: ``func`` is not callable or not a coroutine function.
    """
    if not callable(func):
        raise SetupError(f"a {what} must be an async function, got {type(func).__name__}")
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    ):
        return
    name = name_of(func)
    hint = ""
    if inspect.isasyncgenfunction(func):
        hint = " (it is an async generator: use return, not yield)"
    raise SetupError(
        f"{what} {name} must be declared with `async def`{hint}; imbot awaits {what}s and "
        f"does not run blocking code for you. Write: {example}"
    )


def check_arity(func: Callable[..., Any], count: int, what: str, example: str) -> None:
    """Require that ``func`` can be called with exactly ``count`` positional arguments.

    Raises:
        SetupError: the parameters do not fit.
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins and some C callables: trust them
        return
    try:
        signature.bind(*range(count))
    except TypeError:
        raise SetupError(
            f"{what} {name_of(func)}{signature} must take {count} positional "
            f"parameter{'s' if count != 1 else ''}: {example}"
        ) from None


class _CommandCall:
    """Calls a command handler with the arguments bound in ``ctx.args``."""

    __slots__ = ("func", "signature")

    def __init__(self, func: Callable[..., Awaitable[None]], signature: CommandSignature) -> None:
        self.func = func
        self.signature = signature

    def __call__(self, ctx: Context[Any]) -> Awaitable[None]:
        args, kwargs = self.signature.call_args(ctx.args)
        return self.func(ctx, *args, **kwargs)


@dataclass(slots=True, eq=False)
class HandlerSpec:
    """One registered handler and everything needed to call it.

    Attributes:
        func: the handler as registered (returned unchanged by the decorator).
        kind: ``message``, ``command``, ``connect``, ``tapback``, ``sent``, ``delivered``,
            ``delivery_failed`` or ``event``.
        name: the handler's qualified name, for logs.
        filter: all the handler's filters combined, or ``None``.
        pattern: for ``event`` handlers, the glob on the event type (``imessage.*``).
        command: for commands, the name and how arguments bind.
        command_name: the command's name.
        aliases: the command's other names.
        summary: the first line of the handler's docstring.
        hidden: the command works but ``bot.help_text()`` does not list it.
        call: the handler wrapped in its middleware chain, set when the bot starts.
        error_handlers: error handler maps from the innermost router outwards, set at start.
    """

    func: Callable[..., Awaitable[None]]
    kind: str
    name: str
    filter: Filter | None = None
    pattern: str | None = None
    command: CommandSignature | None = None
    command_name: str | None = None
    aliases: tuple[str, ...] = ()
    summary: str = ""
    hidden: bool = False
    call: Next | None = None
    error_handlers: tuple[dict[type[BaseException], ErrorHandler], ...] = ()
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            self._regex = re.compile(fnmatch.translate(self.pattern))

    @property
    def endpoint(self) -> Next:
        """The innermost call: the handler itself, with command arguments when it has them."""
        if self.command is not None and not self.command.free:
            return _CommandCall(self.func, self.command)
        return self.func

    def serves(self, event_type: str) -> bool:
        """Whether this handler is a candidate for events of ``event_type``."""
        if self._regex is not None:
            return self._regex.match(event_type) is not None
        return EVENT_TYPE_OF_KIND.get(self.kind) == event_type


def summary_of(func: Callable[..., Any]) -> str:
    """The first line of a function's docstring, or ``""``."""
    doc = inspect.getdoc(func) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""
