"""A bot's lifecycle: start and stop (``async with bot``), take events (``feed``), send.

The second layer of ``Bot`` (``Router`` → ``Configurable`` → ``Lifecycle`` → ``Bot``). When
it starts it compiles the route table and opens a ``Runtime`` (``imbot.bot.runtime``): the
client, the stores, the dispatcher, and the path of each event among them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from imbot.bot.inbox import Inbox
from imbot.bot.resources import BotState
from imbot.bot.runtime import Runtime
from imbot.bot.sending import MediaInput, send_message
from imbot.bot.settings import Configurable
from imbot.errors import SetupError, single_exception
from imbot.events import AnyEvent, build_parsers
from imbot.routing.help import help_text, list_commands
from imbot.routing.table import RouteTable

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.bot.context import Context
    from imbot.bot.retry import HandlerRetry
    from imbot.events import MessageReceived
    from imbot.models import Message, SendStyle
    from imbot.routing.commands import CommandInfo
    from imbot.storage.base import DeadLetter, StateStore
    from imbot.types import ErrorListener, Lifespan

__all__ = ["Lifecycle"]


class Lifecycle(Configurable):
    """A configurable router that starts, takes events and sends: the core of ``Bot``.

    ``Bot.__init__`` sets the attributes declared here.

    Attributes:
        state: resources the lifespan or startup hooks created (``bot.state.db``).
        max_concurrency: handlers running at once, across conversations.
        command_prefixes: accepted command prefixes.
        drain_timeout: seconds running handlers get to finish at shutdown.
        typing_interval: seconds between typing-bubble refreshes.
        handler_timeout: seconds a handler may run, or ``None``.
        handler_retry: the retry and dead-letter policy for transient API errors.
    """

    state: BotState
    max_concurrency: int
    command_prefixes: tuple[str, ...]
    drain_timeout: float
    typing_interval: float
    handler_timeout: float | None
    handler_retry: HandlerRetry
    _state_arg: str | StateStore | None
    _inbox_arg: str | Inbox | None
    _store_arg: str | None
    _lifespan: Lifespan | None
    _help_command: bool
    _table: RouteTable | None
    _running_cm: AbstractAsyncContextManager[None] | None
    _error_listeners: list[ErrorListener]

    def add_error_listener(self, listener: ErrorListener) -> None:
        """Tell ``listener(ctx, exc)`` about every handler error that no error handler took.

        The hook for tools around a bot: the test kit uses it to re-raise handler errors
        into the test. A listener is also told about an exception an ``on_error`` handler
        raised. It is called synchronously, after the error is logged, on the handler's
        task: keep it quick, and do not raise from it.

        Example:
            >>> errors = []
            >>> bot.add_error_listener(lambda ctx, exc: errors.append(exc))

        Args:
            listener: a plain (not ``async``) function of the context and the exception.
        """
        self._error_listeners.append(listener)

    def remove_error_listener(self, listener: ErrorListener) -> None:
        """Stop telling a listener added with ``add_error_listener``; no error if it is not.

        Example:
            >>> bot.remove_error_listener(on_error)
        """
        if listener in self._error_listeners:
            self._error_listeners.remove(listener)

    def report_error(self, ctx: Context[Any], exc: BaseException) -> None:
        """Tell the error listeners about an error a handler recovered from itself.

        For code that answers an error without raising it (``imbot.ai`` apologizes to the
        human when the model fails) but must not hide it from the tools around the bot:
        the test kit re-raises it into the test, as it does a handler's error.

        Example:
            >>> except ModelHTTPError as exc:
            ...     await ctx.reply("Sorry, try again later.")
            ...     ctx.bot.report_error(ctx, exc)

        Args:
            ctx: the context of the event being handled.
            exc: the error.
        """
        for listener in list(self._error_listeners):
            listener(ctx, exc)

    @property
    def running(self) -> bool:
        """Whether the bot is started and accepting events."""
        runtime = self._runtime
        return runtime is not None and runtime.accepting

    # ------------------------------------------------------------------ commands & help

    @property
    def commands(self) -> list[CommandInfo]:
        """The registered commands, in registration order.

        Example:
            >>> [c.usage for c in bot.commands]
            ['remind <minutes:int> <text>', 'help']
        """
        return list_commands(self, self.command_prefixes)

    def help_text(self) -> str:
        """A help message listing the commands, their usage and summaries.

        Example:
            >>> @bot.command("help")
            ... async def help(ctx):
            ...     await ctx.reply(bot.help_text())
        """
        return help_text(self.commands)

    async def _builtin_help(self, ctx: Context[MessageReceived]) -> None:
        """Show the commands this bot understands."""
        await ctx.reply(self.help_text())

    # ------------------------------------------------------------------ startup

    def _prepare(self) -> RouteTable:
        """Freeze registration and compile the route table (once)."""
        if self._table is not None:
            return self._table
        if self._lifespan is not None and any(
            r.registrations.startup or r.registrations.shutdown for r in self.walk()
        ):
            raise SetupError(
                "use either Bot(lifespan=...) or @on_startup/@on_shutdown hooks, not both"
            )
        if self._help_command:
            if any(s.command_name == "help" or "help" in s.aliases for s in self.handlers()):
                raise SetupError(
                    "a help command is already registered; drop Bot(help_command=True) "
                    "or your own @bot.command('help')"
                )
            self.add_command(self._builtin_help, "help")
        self.freeze()
        self._table = RouteTable(self, prefixes=self.command_prefixes)
        return self._table

    @asynccontextmanager
    async def _start(self) -> AsyncIterator[None]:
        table = self._prepare()
        # Deferred at import (it is most of `from imbot import Bot`); built here so the
        # first webhook is parsed as fast as the rest, and run()'s gc.freeze() covers it.
        build_parsers()
        opened = Runtime.open(
            bot=cast("Bot", self),  # only a Bot starts: Lifecycle is one of its layers
            table=table,
            client=self._client_arg,
            api_key=self._api_key,
            base_url=self._base_url,
            inbox=self._inbox_arg,
            state=self._state_arg,
            store=self._store_arg,
            listeners=self._error_listeners,
        )
        async with opened as runtime:
            self._runtime = runtime
            try:
                async with runtime.running(self._lifespan, self.drain_timeout):
                    yield
            finally:
                self._runtime = None

    async def __aenter__(self) -> Self:
        """Start the bot without a web server: settings, client, stores, dispatcher, lifespan.

        Use it to feed events yourself (tests, other transports); ``serve()`` does the same
        and adds the webhook server. Leaving the block drains running handlers.

        Example:
            >>> async with bot:
            ...     await bot.feed(event)

        Raises:
            ConfigError: the API key (or another setting) is missing or invalid.
            SetupError: the bot is already running, or registration is invalid.
        """
        if self._running_cm is not None:
            raise SetupError("the bot is already running")
        manager = self._start()
        self._running_cm = manager
        try:
            await manager.__aenter__()
        except BaseExceptionGroup as group:
            self._running_cm = None
            raise (single_exception(group) or group) from None
        except BaseException:
            self._running_cm = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop: drain handlers (up to ``drain_timeout``), run shutdown, close everything."""
        manager = self._running_cm
        self._running_cm = None
        if manager is None:
            return
        try:
            await manager.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            inner = single_exception(group)
            if inner is None:
                raise
            if inner is exc:
                return  # the block's own exception propagates unchanged
            raise inner from None

    # ------------------------------------------------------------------ events

    async def feed(self, event: AnyEvent, raw: bytes | None = None) -> bool:
        """Hand the bot one event: the single entry point (server, tests, resume).

        Duplicates (same ``event.id``) are dropped; a message answering a pending
        ``ctx.ask`` goes to that handler; anything else is queued on its conversation's
        lane. Returns at once: handlers run on the dispatcher.

        Example:
            >>> async with bot:
            ...     accepted = await bot.feed(parse_event(body), body)

        Args:
            event: the parsed event.
            raw: the webhook body, kept by a durable inbox to replay after a crash;
                re-serialized from ``event`` when omitted.

        Returns:
            ``True`` when the event was new, ``False`` for a duplicate.

        Raises:
            SetupError: the bot is not running (or is shutting down).
        """
        runtime = self._runtime
        if runtime is None or not runtime.accepting:
            raise SetupError(
                "the bot is not running: feed events inside `async with bot:` or while serve() runs"
            )
        return await runtime.feed(event, raw)

    async def conversation_state(self, conversation_id: str) -> dict[str, Any]:
        """A copy of a conversation's saved ``ctx.state``, read from the state store.

        For tests and admin tools; handlers use ``ctx.state``. What a handler is changing
        right now shows once it is saved (after the handler, or before ``ctx.ask`` waits).

        Example:
            >>> await bot.conversation_state(conversation_id)
            {'visits': 3}

        Raises:
            SetupError: the bot is not running.
        """
        runtime = self._started("conversation_state")
        return (await runtime.services.load_state(conversation_id)).to_dict()

    # ------------------------------------------------------------------ dead letters

    async def dead_letters(self) -> list[DeadLetter]:
        """The events given up on (see ``docs/dispatch.md``), oldest first.

        Example:
            >>> for letter in await bot.dead_letters():
            ...     print(letter.event_id, letter.reason, letter.error)

        Raises:
            SetupError: the bot is not running (offline, read them with
                ``imbot dead-letters list``).
        """
        return await self._started("dead_letters").inbox.dead_letters()

    async def replay_dead_letter(self, event_id: str) -> bool:
        """Run a dead letter again now: it becomes pending and is queued on its lane.

        Example:
            >>> await bot.replay_dead_letter("evt_01J0R8Z4M6K2")
            True

        Returns:
            ``False`` when no dead letter has that id.
        """
        return await self._started("replay_dead_letter").replay(event_id)

    def _started(self, what: str) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            raise SetupError(f"bot.{what}() needs a running bot (inside `async with bot:`)")
        return runtime

    # ------------------------------------------------------------------ proactive sends

    async def send(
        self,
        text: str | None = None,
        *,
        conversation_id: str | None = None,
        to: str | None = None,
        media: MediaInput | None = None,
        effect: SendStyle | str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Send a message outside any handler (a reminder, a notification).

        Example:
            >>> await bot.send("Your order shipped", conversation_id=cid)

        Args:
            text: the text; needed unless ``media`` is given.
            conversation_id: the conversation; exactly one of this and ``to``.
            to: a connected human's E.164 number.
            media: a URL, a path or bytes to upload, or a ``MediaUpload``.
            effect: a bubble or screen effect.
            idempotency_key: a key of your own, to make a retried send safe.
        """
        return await send_message(
            self.client,
            text,
            conversation_id=conversation_id,
            to=to,
            media=media,
            effect=effect,
            idempotency_key=idempotency_key,
        )
