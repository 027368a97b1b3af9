"""A started bot: its parts, and the path of one event through them.

``Bot`` composes and configures; when it starts it builds a ``Runtime`` and hands it
everything the event path needs::

    Bot.feed(event, raw) ──► Runtime.feed ──► inbox (dedupe) ──► ctx.ask answer? ──► dispatcher
                                                                                   │ lane per
    handler(ctx) ◄── Invoker.run(ctx) ◄── Runtime.handle(event) ◄───────────────────┘ conversation

``Runtime.running()`` is the lifecycle: start the dispatcher, enter the lifespan (or run the
startup hooks), resume what a durable inbox kept, serve, then drain handlers (up to the
drain timeout), leave the lifespan and close the stores and the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from imbot.bot.asks import AskRegistry
from imbot.bot.context import Context
from imbot.bot.dispatch import Dispatcher
from imbot.bot.inbox import Inbox, open_inbox
from imbot.bot.services import Services
from imbot.bot.state import open_state_store
from imbot.errors import MalformedEvent, SetupError
from imbot.events import AnyEvent, MessageReceived, parse_event
from imbot.log import debug_enabled, get_logger
from imbot.routing.invoke import Invoker
from imbot.routing.table import unhandled_hint

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.client import InkboxClient
    from imbot.routing.table import RouteTable
    from imbot.storage.base import StateStore
    from imbot.types import ErrorListener, Lifespan

__all__ = ["Runtime"]

_log = get_logger("imbot")

_QUIET_WHEN_UNHANDLED = frozenset(("imessage.sent", "imessage.delivered"))


async def _usage_reply(ctx: Context[Any], text: str) -> None:
    await ctx.reply(text)


class Runtime:
    """The parts of a started bot, and the handling of each event among them.

    Attributes:
        bot: the bot.
        table: the compiled route table.
        client: the API client.
        inbox: the dedupe window and pending events.
        state_store: where ``ctx.state`` is kept.
        asks: open ``ctx.ask`` questions.
        services: what each context gets.
        dispatcher: the per-conversation lanes.
        stop_requested: set to stop serving gracefully.
        drain_scope: while handlers drain at shutdown, the scope that cancels them.
    """

    def __init__(
        self,
        *,
        bot: Bot,
        table: RouteTable,
        client: InkboxClient,
        inbox: Inbox,
        state_store: StateStore,
        listeners: list[ErrorListener],
    ) -> None:
        """Assemble the parts; ``running()`` starts them."""
        self.bot = bot
        self.table = table
        self.client = client
        self.inbox = inbox
        self.state_store = state_store
        self.asks = AskRegistry()
        self.services = Services(
            bot=bot,
            client=client,
            state_store=state_store,
            asks=self.asks,
            typing_interval=bot.typing_interval,
        )
        self._listeners = listeners
        self._invoker = Invoker(table, report=self.report, usage_reply=_usage_reply)
        self.dispatcher = Dispatcher(self.handle, max_concurrency=bot.max_concurrency)
        self.stop_requested = anyio.Event()
        self.drain_scope: anyio.CancelScope | None = None
        self._accepting = False

    @property
    def accepting(self) -> bool:
        """Whether events are taken (started, and not shutting down)."""
        return self._accepting and self.dispatcher.accepting

    # ------------------------------------------------------------------ one event

    async def feed(self, event: AnyEvent, raw: bytes | None) -> bool:
        """Take one event: dedupe, answer an open ``ctx.ask``, or queue it on its lane.

        Returns:
            ``True`` when the event was new, ``False`` for a duplicate.
        """
        inbox = self.inbox
        if raw is None:
            raw = event.model_dump_json(exclude_unset=True).encode() if inbox.durable else b""
        if not await inbox.accept(event.id, raw):
            if debug_enabled():
                _log.debug("duplicate event dropped", event_id=event.id)
            return False
        if self.asks and isinstance(event, MessageReceived) and self.asks.offer(event):
            await inbox.complete(event.id)
            return True
        try:
            self.dispatcher.submit(event.conversation_id or event.id, event)
        except SetupError:
            _log.warning(
                "event accepted while shutting down",
                event_id=event.id,
                outcome="handled after restart" if inbox.durable else "not handled",
            )
        return True

    async def handle(self, event: AnyEvent) -> None:
        """Handle one event on its lane: route it, save its state, mark it done."""
        ctx: Context[AnyEvent] = Context(self.services, event)
        try:
            if self.services.loads_by_awaiting:
                await ctx.load_state()  # a filter may route on state, and cannot await it
            if not await self._invoker.run(ctx):
                self._log_unhandled(event)
            await ctx.save_state()
        except Exception as exc:
            _log.error("event handling failed", event_id=event.id, exc_info=exc)
            self.report(ctx, exc)
        try:
            await self.inbox.complete(event.id)
        except Exception:
            _log.exception("inbox.complete failed", event_id=event.id)

    def report(self, ctx: Context[Any], exc: BaseException) -> None:
        """Tell the error listeners about an error no error handler took."""
        for listener in self._listeners:
            listener(ctx, exc)

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

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` reports about the event path."""
        dispatcher = self.dispatcher
        return {
            "lanes": dispatcher.lane_count,
            "in_flight": dispatcher.in_flight,
            "asks": len(self.asks),
        }

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def running(
        self, lifespan: Lifespan | None, drain_timeout: float
    ) -> AsyncIterator[Runtime]:
        """Run the dispatcher and the lifespan around the block; drain when it ends.

        Args:
            lifespan: the bot's lifespan, or ``None`` to run the startup/shutdown hooks.
            drain_timeout: seconds running handlers get to finish at shutdown.
        """
        async with anyio.create_task_group() as tg:
            dispatcher = self.dispatcher
            await tg.start(dispatcher.run)
            # The lifespan is entered and exited in this one scope, so task groups it
            # opens nest properly; shielding it at shutdown lets shutdown finish even
            # while the bot is being cancelled.
            with anyio.CancelScope() as guard:
                manager = await self._start_lifespan(lifespan)
                try:
                    self._accepting = True
                    await self._resume()
                    _log.info(
                        "bot started",
                        handle=self.bot.handle,
                        handlers=len(self.bot.handlers()),
                        durable_inbox=self.inbox.durable,
                    )
                    yield self
                finally:
                    guard.shield = True
                    with anyio.CancelScope() as scope:
                        # A second stop() (a second SIGINT) cancels this: drain stops waiting.
                        self.drain_scope = scope
                        if not await dispatcher.drain(drain_timeout):
                            _log.warning(
                                "shutdown: handlers still running were cancelled",
                                drain_timeout=drain_timeout,
                                cancelled=len(dispatcher.abandoned),
                            )
                    self.drain_scope = None
                    self._accepting = False
                    tg.cancel_scope.cancel()  # whatever a forced stop left running
                    await self._stop_lifespan(manager)

    async def _resume(self) -> None:
        pending = await self.inbox.pending()
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
                await self.inbox.complete(item.event_id)
                continue
            self.dispatcher.submit(event.conversation_id or event.id, event)

    async def _start_lifespan(
        self, lifespan: Lifespan | None
    ) -> AbstractAsyncContextManager[Mapping[str, Any] | None] | None:
        if lifespan is not None:
            manager = lifespan(self.bot)
            values = await manager.__aenter__()
            if values:
                self.bot.state.update(values)
            return manager
        for hook in self.table.startup:
            await hook(self.bot)
        return None

    async def _stop_lifespan(
        self, manager: AbstractAsyncContextManager[Mapping[str, Any] | None] | None
    ) -> None:
        if manager is not None:
            try:
                await manager.__aexit__(None, None, None)
            except Exception:
                _log.exception("lifespan shutdown failed")
            return
        for hook in self.table.shutdown:
            try:
                await hook(self.bot)
            except Exception:
                _log.exception("shutdown hook failed", hook=getattr(hook, "__qualname__", hook))

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        *,
        bot: Bot,
        table: RouteTable,
        client: InkboxClient | None,
        api_key: str | None,
        base_url: str | None,
        inbox: str | Inbox | None,
        state: str | StateStore | None,
        listeners: list[ErrorListener],
    ) -> AsyncIterator[Runtime]:
        """Open the client and the stores the bot was given (or their URLs name); close after.

        A client or store passed in as an object is the caller's to close only if it was
        not built here: the client given to ``Bot(client=...)`` stays open.
        """
        closers: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        try:
            if client is None:
                from imbot.client import InkboxClient

                client = InkboxClient(api_key=api_key, base_url=base_url)
                closers.append(("client", client.aclose))
            if not isinstance(inbox, Inbox):
                inbox = open_inbox(inbox)
            closers.insert(0, ("inbox", inbox.close))
            if state is None or isinstance(state, str):
                state = open_state_store(state)
            closers.insert(1, ("state store", state.close))
            yield cls(
                bot=bot,
                table=table,
                client=client,
                inbox=inbox,
                state_store=state,
                listeners=listeners,
            )
        finally:
            with anyio.CancelScope(shield=True):
                for what, close in closers:
                    try:
                        await close()
                    except Exception:
                        _log.exception(f"closing the {what} failed")
