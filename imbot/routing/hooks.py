"""Observers for what runs around handlers: error handlers, middleware, startup and shutdown hooks.

Each works bare or called and returns the function unchanged, like the handler observers in
``imbot.routing.observers``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from imbot.errors import SetupError, SkipHandler
from imbot.routing.handlers import check_arity, check_async, name_of
from imbot.routing.observers import Observer

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.routing.registrations import Registrations
    from imbot.types import ErrorHandlerT, Hook, HookT, Middleware, MiddlewareT

__all__ = ["ErrorObserver", "HookObserver", "MiddlewareObserver"]

_E = TypeVar("_E", bound=BaseException)


class ErrorObserver(Observer):
    """``on_error``: exceptions of a type (and its subclasses) raised by this router's handlers.

    The most specific match wins (by the exception's MRO); a router's own error handlers
    come before its parents'. Works bare (any ``Exception``) or with a type.

    Example:
        >>> @bot.on_error(NotConnected)
        ... async def not_connected(ctx, exc: NotConnected) -> None:
        ...     ctx.log.info("human left", hint=exc.connect_command)
    """

    __slots__ = ()

    @overload
    def __call__(self, exc_type: ErrorHandlerT, /) -> ErrorHandlerT: ...

    @overload
    def __call__(
        self, exc_type: type[_E] = ..., /
    ) -> Callable[
        [Callable[[Context[Any], _E], Awaitable[None]]],
        Callable[[Context[Any], _E], Awaitable[None]],
    ]: ...

    def __call__(self, exc_type: Any = Exception, /) -> Any:
        """Register an error handler, bare or for a type (see ``register``)."""
        if not isinstance(exc_type, type):
            self.register(exc_type)
            return exc_type
        return self._registrations.deferred(
            f"on_error({exc_type.__name__})", lambda func: self.register(func, exc_type)
        )

    def register(
        self,
        handler: Callable[[Context[Any], Any], Awaitable[None]],
        exc_type: type[BaseException] = Exception,
    ) -> None:
        """Register an error handler.

        Args:
            handler: ``async def on_error(ctx, exc)``.
            exc_type: the exception class to handle; ``Exception`` by default.

        Raises:
            SetupError: not an exception class, or one already has a handler here.
        """
        registrations = self._registrations
        registrations.check_open(f"error handler {name_of(handler)}")
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            raise SetupError(f"on_error needs an Exception subclass, got {exc_type!r}")
        if issubclass(exc_type, SkipHandler):
            raise SetupError("SkipHandler is a signal, not an error; it cannot be handled")
        example = "async def on_error(ctx, exc): ..."
        check_async(handler, "error handler", example)
        check_arity(handler, 2, "error handler", example)
        if exc_type in registrations.error_handlers:
            raise SetupError(
                f"{registrations.name} already has an error handler for {exc_type.__name__}: "
                f"{name_of(registrations.error_handlers[exc_type])}"
            )
        registrations.error_handlers[exc_type] = handler


class MiddlewareObserver(Observer):
    """``middleware``: ``async def mw(ctx, call_next)`` around each handler of the router.

    Works bare or called. The bot's middleware wrap its routers' middleware.

    Example:
        >>> @bot.middleware
        ... async def only_known(ctx, call_next) -> None:
        ...     if ctx.sender in KNOWN:
        ...         await call_next(ctx)
    """

    __slots__ = ()

    @overload
    def __call__(self, func: MiddlewareT, /) -> MiddlewareT: ...

    @overload
    def __call__(self, func: None = None, /) -> Callable[[MiddlewareT], MiddlewareT]: ...

    def __call__(self, func: Any = None, /) -> Any:
        """Register a middleware, bare or called (see ``register``)."""
        if func is not None:
            self.register(func)
            return func
        return self._registrations.deferred("middleware()", self.register)

    def register(self, middleware: Middleware) -> None:
        """Register a middleware.

        Raises:
            SetupError: it is not ``async def mw(ctx, call_next)``.
        """
        self._registrations.check_open(f"middleware {name_of(middleware)}")
        example = "async def mw(ctx, call_next): await call_next(ctx)"
        check_async(middleware, "middleware", example)
        check_arity(middleware, 2, "middleware", example)
        self._registrations.middlewares.append(middleware)


class HookObserver(Observer):
    """``on_startup`` / ``on_shutdown``: ``async def hook(bot)`` at start or at shutdown.

    Startup hooks run before any event is handled; shutdown hooks run after in-flight
    handlers drained, in reverse order of registration. A shortcut over
    ``Bot(lifespan=...)``: use one style or the other.

    Example:
        >>> @bot.on_startup
        ... async def connect_db(bot: Bot) -> None:
        ...     bot.state.db = await open_db()
    """

    __slots__ = ("_when",)

    def __init__(self, registrations: Registrations, when: str) -> None:
        """Observe ``startup`` or ``shutdown`` hooks."""
        super().__init__(registrations)
        self._when = when

    @overload
    def __call__(self, hook: HookT, /) -> HookT: ...

    @overload
    def __call__(self, hook: None = None, /) -> Callable[[HookT], HookT]: ...

    def __call__(self, hook: Any = None, /) -> Any:
        """Register a hook, bare or called (see ``register``)."""
        if hook is not None:
            self.register(hook)
            return hook
        return self._registrations.deferred(f"on_{self._when}()", self.register)

    def register(self, hook: Hook) -> None:
        """Register a hook.

        Raises:
            SetupError: it is not ``async def hook(bot)``.
        """
        what = f"{self._when} hook"
        self._registrations.check_open(f"{what} {name_of(hook)}")
        example = f"async def {self._when}(bot): ..."
        check_async(hook, what, example)
        check_arity(hook, 1, what, example)
        hooks = (
            self._registrations.startup if self._when == "startup" else self._registrations.shutdown
        )
        hooks.append(hook)
