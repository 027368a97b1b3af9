"""The ``Bot``: a router that owns the client, the inbox, the state store and the dispatcher.

``bot.py`` composes; the other modules do the work. One event's path::

    server ──► Bot.feed(event, raw) ──► inbox (dedupe) ──► ctx.ask answer? ──► dispatcher
                                                                              │ lane per
    handler(ctx) ◄── RouteTable.dispatch(ctx) ◄── Bot._handle(event) ◄────────┘ conversation

Settings are read when the bot starts, never at import or construction: arguments first,
then ``IMBOT_HANDLE``, ``INKBOX_API_KEY``, ``IMBOT_SIGNING_KEY`` (comma-separated while
rotating keys) and ``INKBOX_BASE_URL``, resolved by ``imbot.config``. ``bot.configured()``
overrides them for a block (the test kit's seam).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc

from imbot.bot.context import AskRegistry, Context, MediaInput, media_url
from imbot.bot.dispatch import Dispatcher
from imbot.bot.inbox import Inbox, open_inbox
from imbot.bot.state import InstantStateStore, StateStore, open_state_store
from imbot.config import SIGNING_KEY_ENV, resolve_bot_settings
from imbot.errors import ConfigError, MalformedEvent, SetupError
from imbot.events import AnyEvent, MessageReceived, build_parsers, parse_event
from imbot.log import configure_logging, debug_enabled, get_logger
from imbot.routing.commands import CommandInfo
from imbot.routing.router import Router, RouteTable, unhandled_hint, usage_prefix

if TYPE_CHECKING:
    from aiohttp import web

    from imbot.client.client import InkboxClient
    from imbot.models import Message, SendStyle
    from imbot.types import ErrorListener, Lifespan

__all__ = ["Bot", "BotState"]

GC_TUNING_ENV = "IMBOT_GC_TUNING"
"""Set to ``0`` to keep Python's default garbage-collector settings under ``bot.run()``."""

GC_THRESHOLD = (10_000, 20, 20)
"""The collector thresholds ``bot.run()`` sets once the bot is listening (default 700, 10, 10)."""

_log = get_logger("imbot")

_QUIET_WHEN_UNHANDLED = frozenset(("imessage.sent", "imessage.delivered"))


class BotState:
    """A namespace for resources the lifespan or startup hooks create: ``bot.state.db``.

    Example:
        >>> @asynccontextmanager
        ... async def lifespan(bot):
        ...     async with open_pool() as pool:
        ...         yield {"pool": pool}        # becomes bot.state.pool
        >>> bot = Bot(lifespan=lifespan)
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        """Create the namespace, optionally filled from a mapping."""
        if values:
            self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"bot.state has no {name!r}; set it in the lifespan (yield {{{name!r}: ...}}) "
            f"or a startup hook (bot.state.{name} = ...)"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several attributes from a mapping."""
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"BotState({', '.join(sorted(self.__dict__))})"


def _gc_tuning_wanted(given: bool | None) -> bool:
    if given is not None:
        return given
    return os.environ.get(GC_TUNING_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def _tune_gc() -> tuple[int, int, int]:
    """Tune the collector for a serving bot; return the thresholds to restore.

    Almost nothing a bot allocates per event is cyclic garbage, yet each event in flight
    keeps a few dozen young container objects alive (the parsed event, its context, the
    coroutines and the HTTP objects), so with the default threshold of 700 the collector
    runs every dozen events and re-traverses the same live objects: measured at 30–50 µs
    per event, up to a quarter of the bot's CPU. Collecting once and freezing what start-up
    built (modules, pydantic schemas) takes those out of every later pass; a gen-0
    threshold of 10,000 makes the passes rare. Cycles are still collected.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    return previous


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The single exception inside (nested) task-group errors, or ``None`` if several."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


async def _check_port(host: str, port: int) -> None:
    """Fail before start-up if ``host:port`` cannot be bound (a port already in use).

    Serving binds only after the lifespan and startup hooks ran; without this probe a
    taken port would start and stop the whole bot before failing. The probe binds the way
    the server will (``SO_REUSEADDR``, IPv6 sockets v6-only) and closes at once. A port
    taken in the instant between the two still fails, from the server.

    Raises:
        OSError: the address cannot be bound; same errno and message as the server's.
    """
    if port == 0:
        return
    try:
        infos = await anyio.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                if os.name == "posix":
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        message = (
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "is another process using the port? Pick another port, or 0 for a free one"
        )
        if exc.errno is None:
            raise OSError(message) from exc
        raise type(exc)(exc.errno, message) from exc


class Bot(Router):
    """An iMessage bot: register handlers, then ``run()`` (or ``await serve()``).

    Example:
        >>> from imbot import Bot
        >>> bot = Bot()                      # settings from the environment at start
        >>> @bot.on_message()
        ... async def echo(ctx):
        ...     await ctx.reply(ctx.text)
        >>> bot.run()                        # POST /webhook on 127.0.0.1:8000

    Args:
        handle: the agent handle (``IMBOT_HANDLE``); used in logs and health.
        api_key: the Inkbox API key (``INKBOX_API_KEY``, then ``~/.inkbox/config``).
        signing_key: the webhook signing key, or several while rotating
            (``IMBOT_SIGNING_KEY``, comma-separated); needed to serve webhooks.
        base_url: the API origin (``INKBOX_BASE_URL``; ``https://inkbox.ai`` by default).
        state: where ``ctx.state`` is kept: ``None`` (memory), ``"sqlite:///bot.db"``, or a
            ``StateStore``.
        inbox: where event ids (and, durable, bodies) are kept: ``None`` (memory),
            ``"sqlite:///bot.db"`` to resume after a crash, or an ``Inbox``.
        max_concurrency: handlers running at once, across conversations (256). Not a
            throughput knob: handlers mostly wait on the API, and a low bound makes events
            wait in their lanes after their webhook was acknowledged.
        command_prefixes: accepted command prefixes; ``("/", "")`` accepts ``/help`` and
            ``help``.
        drain_timeout: seconds running handlers get to finish at shutdown.
        lifespan: ``(bot) -> async context manager``, entered at start; what it yields is
            set on ``bot.state``. Not together with ``on_startup`` / ``on_shutdown``.
        client: an ``InkboxClient`` to use instead of building one (yours to close).
        typing_interval: seconds between typing-bubble refreshes in ``ctx.typing()``.
        help_command: register a ``help`` command that replies ``bot.help_text()``.
        max_body_size: largest webhook body accepted, in bytes.
        name: a name for logs.

    Raises:
        SetupError: an argument is invalid (checked here, before anything runs).
    """

    def __init__(
        self,
        handle: str | None = None,
        api_key: str | None = None,
        signing_key: str | Sequence[str] | None = None,
        base_url: str | None = None,
        *,
        state: str | StateStore | None = None,
        inbox: str | Inbox | None = None,
        max_concurrency: int = 256,
        command_prefixes: Sequence[str] = ("/", ""),
        drain_timeout: float = 30.0,
        lifespan: Lifespan | None = None,
        client: InkboxClient | None = None,
        typing_interval: float = 40.0,
        help_command: bool = False,
        max_body_size: int = 1_048_576,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name or (f"Bot(@{handle})" if handle else "Bot"))
        if isinstance(command_prefixes, str) or not command_prefixes:
            raise SetupError('command_prefixes must be a non-empty sequence, e.g. ("/", "")')
        if not all(isinstance(p, str) and not p.isspace() for p in command_prefixes):
            raise SetupError("command_prefixes must be strings without spaces")
        if max_concurrency < 1:
            raise SetupError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if drain_timeout < 0 or typing_interval <= 0:
            raise SetupError("drain_timeout must be >= 0 and typing_interval > 0")
        if lifespan is not None and not callable(lifespan):
            raise SetupError("lifespan must be a function (bot) -> async context manager")
        self._handle_arg = handle
        self._api_key = api_key
        self._signing_key = signing_key
        self._base_url = base_url
        self._state_arg = state
        self._inbox_arg = inbox
        self.max_concurrency = max_concurrency
        self.command_prefixes = tuple(command_prefixes)
        self.drain_timeout = drain_timeout
        self.typing_interval = typing_interval
        self.max_body_size = max_body_size
        self._lifespan = lifespan
        self._client_arg = client
        self._help_command = help_command
        self.state = BotState()
        self._client: InkboxClient | None = client
        self._table: RouteTable | None = None
        self._dispatcher: Dispatcher | None = None
        self._inbox: Inbox | None = None
        self._state_store: StateStore | None = None
        # Set at start: the state store if it can load without awaiting (ctx.state then
        # loads on first use), else whether routing must load state before the filters.
        self._instant_state_store: InstantStateStore | None = None
        self._state_loads_by_awaiting = False
        self._asks = AskRegistry()
        self._running_cm: AbstractAsyncContextManager[Bot] | None = None
        self._stop_requested: anyio.Event | None = None
        self._drain_scope: anyio.CancelScope | None = None
        self._error_listeners: list[ErrorListener] = []  # add_error_listener()

    # ------------------------------------------------------------------ settings

    @property
    def handle(self) -> str | None:
        """The agent handle: the argument, else ``IMBOT_HANDLE``, else ``None``."""
        return resolve_bot_settings(self._handle_arg).handle

    def signing_keys(self) -> tuple[str, ...]:
        """The webhook signing keys: the argument, else ``IMBOT_SIGNING_KEY`` (comma-separated).

        Raises:
            ConfigError: there is none; the message says how to get one.
        """
        keys = resolve_bot_settings(signing_key=self._signing_key).signing_keys
        if not keys:
            raise ConfigError(
                f"no webhook signing key: set {SIGNING_KEY_ENV} (several keys comma-separated "
                "while rotating) or pass Bot(signing_key=...). Create one with "
                "POST /api/v1/identities/{handle}/signing-key (client.create_signing_key)"
            )
        return keys

    @contextmanager
    def configured(
        self,
        *,
        handle: str | None = None,
        api_key: str | None = None,
        signing_key: str | Sequence[str] | None = None,
        base_url: str | None = None,
    ) -> Iterator[Self]:
        """Override settings of a bot that is not running, for the block only.

        While the block runs, the settings given win as constructor arguments would (over
        the environment); ``None`` leaves a setting as it was. On exit the previous values
        come back, so the same bot can be configured again. This is how the test kit points
        a user's ``Bot()`` at the simulator without touching ``os.environ``.

        Example:
            >>> with bot.configured(api_key=key, signing_key=secret, base_url=sim.base_url):
            ...     async with bot:
            ...         await bot.feed(event)

        Args:
            handle: the agent handle.
            api_key: the Inkbox API key.
            signing_key: the webhook signing key, or several while rotating.
            base_url: the API origin.

        Raises:
            SetupError: the bot is running (settings are read when it starts), or it was
                built with ``client=`` and ``api_key`` or ``base_url`` is given (that
                client has its own).
        """
        if self._running_cm is not None:
            raise SetupError(
                "bot.configured(...) while the bot is running: settings are read at start; "
                "configure it before `async with bot`, serve() or run()"
            )
        if self._client_arg is not None and (api_key is not None or base_url is not None):
            raise SetupError(
                "this bot was built with client=..., which has its own API key and base URL; "
                "build the bot without client= to configure api_key or base_url"
            )
        saved = (self._handle_arg, self._api_key, self._signing_key, self._base_url)
        if handle is not None:
            self._handle_arg = handle
        if api_key is not None:
            self._api_key = api_key
        if signing_key is not None:
            self._signing_key = signing_key
        if base_url is not None:
            self._base_url = base_url
        try:
            yield self
        finally:
            self._handle_arg, self._api_key, self._signing_key, self._base_url = saved

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

    @property
    def client(self) -> InkboxClient:
        """The API client (one connection pool for the whole bot).

        Raises:
            SetupError: the bot has not started and no ``client=`` was given.
        """
        if self._client is None:
            raise SetupError(
                "bot.client exists once the bot has started (inside `async with bot:`, "
                "serve() or run()), or pass Bot(client=InkboxClient(...))"
            )
        return self._client

    @property
    def running(self) -> bool:
        """Whether the bot is started and accepting events."""
        return self._dispatcher is not None and self._dispatcher.accepting

    # ------------------------------------------------------------------ commands & help

    @property
    def commands(self) -> list[CommandInfo]:
        """The registered commands, in registration order.

        Example:
            >>> [c.usage for c in bot.commands]
            ['remind <minutes:int> <text>', 'help']
        """
        prefix = usage_prefix(self.command_prefixes)
        found = []
        for spec in self.handlers():
            if spec.command is None or spec.command_name is None:
                continue
            usage = spec.command.usage(spec.command_name, prefix)
            found.append(CommandInfo(spec.command_name, spec.aliases, usage, spec.summary))
        return found

    def help_text(self) -> str:
        """A help message listing the commands, their usage and summaries.

        Example:
            >>> @bot.command("help")
            ... async def help(ctx):
            ...     await ctx.reply(bot.help_text())
        """
        commands = self.commands
        if not commands:
            return "This bot has no commands: just write to it."
        lines = ["Commands:"]
        for command in commands:
            line = command.usage
            if command.summary:
                line += f" — {command.summary}"
            if command.aliases:
                line += f" (also: {', '.join(command.aliases)})"
            lines.append(line)
        return "\n".join(lines)

    async def _builtin_help(self, ctx: Context[MessageReceived]) -> None:
        """Show the commands this bot understands."""
        await ctx.reply(self.help_text())

    # ------------------------------------------------------------------ startup

    def _prepare(self) -> RouteTable:
        """Freeze registration and compile the route table (once)."""
        if self._table is not None:
            return self._table
        if self._lifespan is not None and any(r._startup or r._shutdown for r in self.walk()):
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

    def _open_client(self) -> tuple[InkboxClient, bool]:
        if self._client_arg is not None:
            return self._client_arg, False
        from imbot.client.client import InkboxClient

        return InkboxClient(api_key=self._api_key, base_url=self._base_url), True

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[Bot]:
        table = self._prepare()
        # Deferred at import (it is most of `from imbot import Bot`); built here so the
        # first webhook is parsed as fast as the rest, and run()'s gc.freeze() covers it.
        build_parsers()
        client, owned = self._open_client()
        inbox = self._inbox_arg if isinstance(self._inbox_arg, Inbox) else None
        store = self._state_arg if not isinstance(self._state_arg, str | None) else None
        try:
            if inbox is None:
                inbox = open_inbox(self._inbox_arg if isinstance(self._inbox_arg, str) else None)
            if store is None:
                url = self._state_arg if isinstance(self._state_arg, str) else None
                store = open_state_store(url)
            self._client, self._inbox, self._state_store = client, inbox, store
            if isinstance(store, InstantStateStore):
                self._instant_state_store = store
            else:
                self._state_loads_by_awaiting = True
            self._stop_requested = anyio.Event()
            async with anyio.create_task_group() as tg:
                dispatcher = Dispatcher(self._handle, max_concurrency=self.max_concurrency)
                await tg.start(dispatcher.run)
                # The lifespan is entered and exited in this one scope, so task groups it
                # opens nest properly; shielding it at shutdown lets shutdown finish even
                # while the bot is being cancelled.
                with anyio.CancelScope() as guard:
                    lifespan = await self._start_lifespan(table)
                    try:
                        self._dispatcher = dispatcher
                        await self._resume(inbox, dispatcher)
                        _log.info(
                            "bot started",
                            handle=self.handle,
                            handlers=len(self.handlers()),
                            durable_inbox=inbox.durable,
                        )
                        yield self
                    finally:
                        guard.shield = True
                        with anyio.CancelScope() as scope:
                            # A second SIGINT cancels this scope: drain stops waiting.
                            self._drain_scope = scope
                            if not await dispatcher.drain(self.drain_timeout):
                                _log.warning(
                                    "shutdown: handlers still running were cancelled",
                                    drain_timeout=self.drain_timeout,
                                    cancelled=len(dispatcher.abandoned),
                                )
                        self._drain_scope = None
                        self._dispatcher = None
                        tg.cancel_scope.cancel()  # whatever a forced stop left running
                        await self._stop_lifespan(table, lifespan)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close(inbox, store, client if owned else None)

    async def _start_lifespan(
        self, table: RouteTable
    ) -> AbstractAsyncContextManager[Mapping[str, Any] | None] | None:
        if self._lifespan is not None:
            manager = self._lifespan(self)
            values = await manager.__aenter__()
            if values:
                self.state.update(values)
            return manager
        for hook in table.startup:
            await hook(self)
        return None

    async def _stop_lifespan(
        self,
        table: RouteTable,
        lifespan: AbstractAsyncContextManager[Mapping[str, Any] | None] | None,
    ) -> None:
        if lifespan is not None:
            try:
                await lifespan.__aexit__(None, None, None)
            except Exception:
                _log.exception("lifespan shutdown failed")
            return
        await self._run_shutdown_hooks(table)

    async def _run_shutdown_hooks(self, table: RouteTable) -> None:
        for hook in table.shutdown:
            try:
                await hook(self)
            except Exception:
                _log.exception("shutdown hook failed", hook=getattr(hook, "__qualname__", hook))

    async def _close(
        self, inbox: Inbox | None, store: StateStore | None, client: InkboxClient | None
    ) -> None:
        for what, closer in (("inbox", inbox), ("state store", store)):
            if closer is None:
                continue
            try:
                await closer.close()
            except Exception:
                _log.exception(f"closing the {what} failed")
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                _log.exception("closing the client failed")
            self._client = self._client_arg
        self._inbox = None
        self._state_store = None
        self._instant_state_store = None
        self._state_loads_by_awaiting = False

    async def _resume(self, inbox: Inbox, dispatcher: Dispatcher) -> None:
        pending = await inbox.pending()
        if not pending:
            return
        _log.info("resuming events accepted before a restart", count=len(pending))
        for item in pending:
            try:
                event = parse_event(item.raw)
            except MalformedEvent as exc:
                _log.error(
                    "dropping an unreadable pending event", event_id=item.event_id, error=str(exc)
                )
                await inbox.complete(item.event_id)
                continue
            dispatcher.submit(event.conversation_id or event.id, event)

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
        manager = self._running()
        self._running_cm = manager
        try:
            await manager.__aenter__()
        except BaseExceptionGroup as group:
            self._running_cm = None
            raise (_unwrap(group) or group) from None
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
            inner = _unwrap(group)
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
        dispatcher = self._dispatcher
        inbox = self._inbox
        if dispatcher is None or inbox is None or not dispatcher.accepting:
            raise SetupError(
                "the bot is not running: feed events inside `async with bot:` or while serve() runs"
            )
        if raw is None:
            raw = event.model_dump_json(exclude_unset=True).encode() if inbox.durable else b""
        if not await inbox.accept(event.id, raw):
            if debug_enabled():
                _log.debug("duplicate event dropped", event_id=event.id)
            return False
        if self._asks and isinstance(event, MessageReceived) and self._asks.offer(event):
            await inbox.complete(event.id)
            return True
        try:
            dispatcher.submit(event.conversation_id or event.id, event)
        except SetupError:
            _log.warning(
                "event accepted while shutting down",
                event_id=event.id,
                outcome="handled after restart" if inbox.durable else "not handled",
            )
        return True

    async def _handle(self, event: AnyEvent) -> None:
        table = self._table
        assert table is not None
        ctx: Context[AnyEvent] = Context(self, event)
        try:
            if not await table.dispatch(ctx):
                self._log_unhandled(event)
            await ctx._finish()
        except Exception as exc:
            _log.error("event handling failed", event_id=event.id, exc_info=exc)
            self._unhandled_error(ctx, exc)
        inbox = self._inbox
        if inbox is not None:
            try:
                await inbox.complete(event.id)
            except Exception:
                _log.exception("inbox.complete failed", event_id=event.id)

    def _log_unhandled(self, event: AnyEvent) -> None:
        event_type = event.event_type
        if event_type in _QUIET_WHEN_UNHANDLED:
            if debug_enabled():
                _log.debug(
                    "no handler for event", event_type=event_type, add=unhandled_hint(event_type)
                )
            return
        if isinstance(event, MessageReceived) and event.data.message.direction == "outbound":
            return
        _log.info(
            "no handler for event",
            event_type=event_type,
            event_id=event.id,
            add=unhandled_hint(event_type),
        )

    def _unhandled_error(self, ctx: Context[Any], exc: BaseException) -> None:
        """Tell the ``add_error_listener`` listeners about an error no error handler took."""
        for listener in self._error_listeners:
            listener(ctx, exc)

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
        client = self.client
        urls = None if media is None else [await media_url(client, media)]
        return await client.send_message(
            conversation_id=conversation_id,
            to=to,
            text=text,
            media_urls=urls,
            send_style=effect,
            idempotency_key=idempotency_key,
        )

    # ------------------------------------------------------------------ serving

    def _health(self) -> dict[str, Any]:
        dispatcher = self._dispatcher
        return {
            "handle": self.handle,
            "running": self.running,
            "lanes": dispatcher.lane_count if dispatcher else 0,
            "in_flight": dispatcher.in_flight if dispatcher else 0,
            "asks": len(self._asks),
        }

    async def _receive(self, event: AnyEvent, raw: bytes) -> None:
        await self.feed(event, raw)

    def _create_app(self, path: str, secrets: Sequence[str]) -> web.Application:
        from imbot.bot.server import create_app

        return create_app(
            receive=self._receive,
            secrets=secrets,
            path=path,
            max_body_size=self.max_body_size,
            health=self._health,
        )

    @property
    def app(self) -> web.Application:
        """An aiohttp application serving the webhook at ``/webhook``, to mount elsewhere.

        The bot starts with the application and stops with it.

        Example:
            >>> main = web.Application()
            >>> main.add_subapp("/imbot", bot.app)     # POST /imbot/webhook

        Raises:
            ConfigError: no signing key is configured.
        """
        app = self._create_app("/webhook", self.signing_keys())

        async def run_bot(_: web.Application) -> AsyncIterator[None]:
            async with self:
                yield

        app.cleanup_ctx.append(run_bot)
        return app

    def stop(self) -> None:
        """Ask a serving bot to stop gracefully: no new webhooks, drain, shut down.

        ``serve()`` returns once done. (Cancelling ``serve()`` instead stops at once,
        cancelling running handlers.)

        Example:
            >>> bot.stop()
        """
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/webhook",
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the bot and its webhook server until ``stop()`` (or cancellation).

        Example:
            >>> async with anyio.create_task_group() as tg:
            ...     port = await tg.start(bot.serve, "127.0.0.1", 0)

        Args:
            host: the interface to listen on; the loopback by default.
            port: the port; 0 picks a free one (reported through ``task_status``).
            path: the webhook route.
            task_status: receives the bound port once the server listens.

        Raises:
            ConfigError: a setting (API key, signing key) is missing or invalid.
            OSError: the address cannot be bound (a port already in use is found before
                the lifespan or startup hooks run).
        """
        await self._serve(host, port, path, task_status=task_status)

    async def _serve(
        self,
        host: str,
        port: int,
        path: str,
        *,
        listening: Callable[[], None] | None = None,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        secrets = self.signing_keys()
        await _check_port(host, port)  # before start-up: a taken port starts nothing
        try:
            async with self:
                from imbot.bot.server import serve_app

                app = self._create_app(path, secrets)
                stop = self._stop_requested
                assert stop is not None
                async with anyio.create_task_group() as tg:
                    bound = await tg.start(partial(serve_app, app, host=host, port=port))
                    _log.info("serving webhooks", url=f"http://{host}:{bound}{path}")
                    if listening is not None:
                        listening()  # start-up is over: everything built so far stays
                    task_status.started(bound)
                    await stop.wait()
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise (_unwrap(group) or group) from None

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/webhook",
        *,
        log_level: str | None = None,
        gc_tuning: bool | None = None,
    ) -> None:
        """Serve until SIGINT/SIGTERM: the one blocking entry point.

        Configures logging (see ``imbot.log``), serves, and on the first signal stops
        taking webhooks and lets running handlers finish within ``drain_timeout``; a second
        signal cancels them.

        Once the bot listens, it tunes Python's garbage collector for serving (collect,
        ``gc.freeze()``, thresholds ``GC_THRESHOLD``): about a fifth less CPU per event.
        The previous thresholds are restored when ``run()`` returns.

        Example:
            >>> if __name__ == "__main__":
            ...     bot.run(port=8000)

        Args:
            host: the interface to listen on; the loopback by default.
            port: the port.
            path: the webhook route.
            log_level: the log level; ``IMBOT_LOG_LEVEL`` or ``INFO`` by default.
            gc_tuning: tune the garbage collector; ``False`` keeps Python's defaults. By
                default on, unless ``IMBOT_GC_TUNING=0``.
        """
        configure_logging(log_level)
        tune = _gc_tuning_wanted(gc_tuning)
        previous: list[tuple[int, int, int]] = []

        def listening() -> None:
            previous.append(_tune_gc())

        try:
            anyio.run(self._serve_until_signal, host, port, path, listening if tune else None)
        finally:
            if previous:
                gc.unfreeze()
                gc.set_threshold(*previous[0])

    async def _serve_until_signal(
        self, host: str, port: int, path: str, listening: Callable[[], None] | None
    ) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_signals, tg.cancel_scope, name="imbot.signals")
                await self._serve(host, port, path, listening=listening)
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise (_unwrap(group) or group) from None

    async def _watch_signals(self, everything: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                stop = self._stop_requested
                if self.running and stop is not None and not stop.is_set():
                    _log.info(
                        "stopping: finishing running handlers",
                        signal=signal.Signals(signum).name,
                        drain_timeout=self.drain_timeout,
                    )
                    self.stop()
                elif self._drain_scope is not None:
                    _log.warning("second signal: cancelling running handlers")
                    self._drain_scope.cancel()
                else:
                    # Still starting (or between stop and drain): nothing to wait for.
                    _log.warning("stopping now", signal=signal.Signals(signum).name)
                    everything.cancel()
