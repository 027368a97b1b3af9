"""Invoking the handler routing chose: filters, command arguments, middleware, error handlers.

``Invoker.run(ctx)`` tries the route table's candidates for the event in order: the first
whose filters pass runs, through its middleware chain (composed once, at start). For a new
connection's first message (``ctx.new_connection``, found out by the bot) the first
``on_connect`` handler that takes it runs before that, and routing then goes on as usual. A
handler may pass the event on with ``ctx.skip()`` (``raise SkipHandler``); the next
candidate is then tried. A handler's exception goes to the most specific error handler (by
the exception's MRO, the handler's own router first, then its parents'), and otherwise to
the bot's report function; a transient API error (``is_transient``) skips the error
handlers and leaves the call, for the bot to run the event again later. An ``on_turn``
handler that takes the event goes to the bot's turn runner (``Invoker.turns``), which
gathers the turn and runs the handler through ``Invoker.call``. Routing does no IO of its
own: the usage reply for bad command arguments and the report of unhandled errors are
functions the bot hands in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from imbot.errors import CommandArgumentError, HandlerTimeout, SkipHandler, is_transient
from imbot.log import debug_enabled, get_logger
from imbot.routing.filters import check
from imbot.routing.handlers import HandlerSpec, name_of

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.routing.table import CommandMatch, RouteTable
    from imbot.routing.turns import TurnHook
    from imbot.types import ErrorHandler

__all__ = ["Invoker", "find_error_handler"]

_log = get_logger("imbot")

Report = Callable[["Context[Any]", BaseException], None]
"""Told of an exception no error handler took: ``(ctx, exc) -> None``."""

UsageReply = Callable[["Context[Any]", str], Awaitable[object]]
"""Answers a command whose arguments did not fit: ``(ctx, text)``."""


def find_error_handler(spec: HandlerSpec, exc: BaseException) -> ErrorHandler | None:
    """The error handler for an exception a handler raised, or ``None``.

    The handler's own router's map is searched first, then its parents'; within a map, the
    exception's classes in MRO order, so the most specific registration wins.
    """
    for table in spec.error_handlers:
        for cls in type(exc).__mro__:
            handler = table.get(cls)
            if handler is not None:
                return handler
    return None


class Invoker:
    """Runs the first handler that takes an event, and handles what it raises.

    Example:
        >>> invoker = Invoker(table, report=bot_report, usage_reply=reply)
        >>> handled = await invoker.run(ctx)
    """

    __slots__ = ("_handler_timeout", "_report", "_table", "_usage_reply", "turns")

    def __init__(
        self,
        table: RouteTable,
        *,
        report: Report,
        usage_reply: UsageReply,
        handler_timeout: float | None = None,
    ) -> None:
        """Invoke the handlers of a compiled route table.

        Args:
            table: the route table.
            report: told of exceptions no error handler took (and of those an error
                handler raised).
            usage_reply: sends the usage line when a command's arguments do not fit.
            handler_timeout: seconds a handler (with its middleware) may run before it is
                cancelled with ``HandlerTimeout``; ``None`` for no limit.
        """
        self._table = table
        self._report = report
        self._usage_reply = usage_reply
        self._handler_timeout = handler_timeout
        self.turns: TurnHook | None = None
        """Runs a chosen ``on_turn`` handler; the bot sets it when the table has one."""

    @property
    def table(self) -> RouteTable:
        """The route table this invoker runs."""
        return self._table

    async def run(self, ctx: Context[Any]) -> bool:
        """Route one event to the first handler that takes it, and run that handler.

        Handler exceptions go to the error handlers (or ``report``) and never escape.

        Args:
            ctx: a fresh context for the event.

        Returns:
            ``True`` when a handler ran (and did not skip), ``False`` when none took it.
        """
        table = self._table
        command, candidates = table.match(ctx.event)
        greeted = ctx.new_connection and bool(table.connect) and await self._greet(ctx)
        if command is not None and await self._attempt(ctx, command[0], command):
            return True
        for spec in candidates:
            if await self._attempt(ctx, spec, None):
                return True
        return greeted

    async def _greet(self, ctx: Context[Any]) -> bool:
        """Run the first ``on_connect`` handler that takes the event; routing goes on after."""
        for spec in self._table.connect:
            if await self._attempt(ctx, spec, None):
                # What the greeting's filters and run left must not leak into routing.
                ctx.handler_name = None
                ctx.match = None
                return True
        return False

    async def _attempt(
        self, ctx: Context[Any], spec: HandlerSpec, command: CommandMatch | None
    ) -> bool:
        try:
            flt = spec.filter
            if flt is not None and not await check(flt, ctx):
                return False
            if self.turns is not None and spec.kind == "turn":
                return await self.turns(ctx, spec)  # gathers the turn, then calls back
            ctx.handler_name = spec.name
            if command is not None:
                ctx.command = command[1]
                assert spec.command is not None
                try:
                    ctx.args = spec.command.bind(command[2])
                except CommandArgumentError as exc:
                    if debug_enabled():
                        _log.debug("bad command arguments", command=command[1], reason=exc.reason)
                    await self._usage_reply(ctx, f"Usage: {self._table.usage(spec)}\n{exc.reason}")
                    return True
            assert spec.call is not None
            if self._handler_timeout is None:
                await spec.call(ctx)
            else:
                await self._call_with_timeout(ctx, spec)
        except SkipHandler:
            ctx.command = None
            ctx.args = {}
            ctx.handler_name = None
            return False
        except Exception as exc:
            if is_transient(exc):
                raise  # the API failed, not the handler: the bot runs the event again later
            await self._failed(ctx, spec, exc)
        return True

    async def call(self, ctx: Context[Any], spec: HandlerSpec) -> bool:
        """Run a handler whose filters already passed: middleware, timeout, error handlers.

        The turn runner calls it for each run of a turn handler.

        Returns:
            ``False`` when the handler passed with ``ctx.skip()``.

        Raises:
            Exception: a transient API error, for the bot to run the event again later.
        """
        try:
            ctx.handler_name = spec.name
            if self._handler_timeout is None:
                assert spec.call is not None
                await spec.call(ctx)
            else:
                await self._call_with_timeout(ctx, spec)
        except SkipHandler:
            ctx.handler_name = None
            return False
        except Exception as exc:
            if is_transient(exc):
                raise
            await self._failed(ctx, spec, exc)
        return True

    async def _call_with_timeout(self, ctx: Context[Any], spec: HandlerSpec) -> None:
        assert spec.call is not None and self._handler_timeout is not None
        with anyio.move_on_after(self._handler_timeout) as scope:
            await spec.call(ctx)
        if scope.cancelled_caught:
            raise HandlerTimeout(spec.name, self._handler_timeout)

    async def _failed(self, ctx: Context[Any], spec: HandlerSpec, exc: Exception) -> None:
        event = ctx.event
        handler = find_error_handler(spec, exc)
        if handler is None:
            _log.error(
                "handler raised",
                handler=spec.name,
                event_id=event.id,
                event_type=event.event_type,
                conversation_id=ctx.conversation_id,
                hint="add @bot.on_error(...) to handle it",
                exc_info=exc,
            )
            self._report(ctx, exc)
            return
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
            self._report(ctx, again)
