"""One router's registrations: handlers, included routers, middleware, error handlers, hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from imbot.errors import SetupError

if TYPE_CHECKING:
    from imbot.routing.handlers import HandlerSpec
    from imbot.routing.router import Router
    from imbot.types import ErrorHandler, Hook, Middleware

__all__ = ["Registrations"]

_F = TypeVar("_F", bound=Callable[..., Any])


class Registrations:
    """What one router holds, in registration order, and whether it still takes more.

    Attributes:
        name: the router's name, for messages.
        entries: handlers and included routers, in order.
        middlewares: the router's middleware, outermost first.
        error_handlers: error handler by exception class.
        startup: startup hooks.
        shutdown: shutdown hooks.
        parent: the router this one is included in, if any.
        frozen: whether registration is closed.
        pending: decorators created but not yet applied, with a label for the error.
    """

    __slots__ = (
        "entries",
        "error_handlers",
        "frozen",
        "middlewares",
        "name",
        "parent",
        "pending",
        "shutdown",
        "startup",
    )

    def __init__(self, name: str) -> None:
        """Start empty and open."""
        self.name = name
        self.entries: list[HandlerSpec | Router] = []
        self.middlewares: list[Middleware] = []
        self.error_handlers: dict[type[BaseException], ErrorHandler] = {}
        self.startup: list[Hook] = []
        self.shutdown: list[Hook] = []
        self.parent: Router | None = None
        self.frozen = False
        self.pending: dict[object, str] = {}

    def check_open(self, what: str) -> None:
        """Refuse a registration once the bot has started.

        Raises:
            SetupError: registration is frozen.
        """
        if self.frozen:
            raise SetupError(
                f"cannot register {what} on {self.name}: registration froze when the bot "
                "started; register everything before bot.serve() / bot.run()"
            )

    def add(self, entry: HandlerSpec | Router, what: str) -> None:
        """Append a handler or an included router."""
        self.check_open(what)
        self.entries.append(entry)

    def deferred(self, label: str, register: Callable[[_F], object]) -> Callable[[_F], _F]:
        """A decorator that registers the function it is applied to, and returns it.

        Until it is applied it is remembered as pending, so a decorator created and never
        applied (usually one written without its parentheses) fails at start, by name.
        """
        token = object()
        self.pending[token] = label

        def decorator(func: _F) -> _F:
            self.pending.pop(token, None)
            register(func)
            return func

        return decorator
