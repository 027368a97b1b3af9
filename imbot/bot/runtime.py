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
from imbot.bot.handling import Handling
from imbot.bot.inbox import Inbox, event_key, open_inbox
from imbot.bot.services import Services
from imbot.bot.state import open_state_store
from imbot.bot.watchdog import LoopWatchdog
from imbot.config import resolve_store
from imbot.errors import MalformedEvent, SetupError
from imbot.events import AnyEvent, MessageReceived, parse_event
from imbot.log import debug_enabled, get_logger
from imbot.routing.invoke import Invoker

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.bot.cluster import Cluster
    from imbot.client import InkboxClient
    from imbot.routing.table import RouteTable
    from imbot.storage.base import StateStore
    from imbot.types import ErrorListener, Lifespan

__all__ = ["Runtime"]

_log = get_logger("imbot")


async def _usage_reply(ctx: Context[Any], text: str) -> None:
    await ctx.reply(text)


def _envelope_id(raw: bytes) -> str | None:
    try:
        return parse_event(raw).id
    except MalformedEvent:
        return None


def _cluster(inbox: Inbox, state_store: StateStore) -> Cluster | None:
    """The shared lanes, for an inbox other processes share (imported only then)."""
    if not inbox.shared:
        return None
    from imbot.bot.cluster import Cluster
    from imbot.storage.redis_inbox import RedisInboxStore

    if not isinstance(inbox.store, RedisInboxStore):
        raise SetupError(f"a shared inbox needs the Redis engine, got {type(inbox.store).__name__}")
    return Cluster(inbox.store, state_store)


class Runtime:
    """The parts of a started bot, and the handling of each event among them.

    Attributes:
        bot: the bot.
        table: the compiled route table.
        client: the API client.
        inbox: the dedupe window and pending events.
        state_store: where ``ctx.state`` is kept.
        asks: open ``ctx.ask`` questions.
        cluster: the lanes leased in Redis when the inbox is shared, else ``None``.
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
        self.cluster = _cluster(inbox, state_store)
        self.asks = AskRegistry() if self.cluster is None else self.cluster.asks
        self.services = Services(
            bot=bot,
            client=client,
            state_store=state_store,
            asks=self.asks,
            typing_interval=bot.typing_interval,
        )
        self._listeners = listeners
        invoker = Invoker(
            table,
            report=self.report,
            usage_reply=_usage_reply,
            handler_timeout=bot.handler_timeout,
        )
        self.handling = Handling(
            services=self.services,
            invoker=invoker,
            inbox=inbox if self.cluster is None else self.cluster.inbox,
            retry=bot.handler_retry,
            report=self.report,
        )
        cluster = self.cluster
        handle = self.handling.handle if cluster is None else cluster.step
        self.dispatcher = Dispatcher(handle, max_concurrency=bot.max_concurrency)
        # Turns gather in the lanes (bot/turns.py): the dispatcher's, or the Redis queues.
        self.handling.lanes = self.dispatcher if cluster is None else cluster.queues
        if cluster is not None:
            cluster.attach(self.handling, self.dispatcher)
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
        if self.cluster is not None:
            return await self.cluster.feed(event, raw, inbox)
        key = await inbox.admit(event, raw)
        if key is None:
            if debug_enabled():
                _log.debug("duplicate event dropped", event_id=event.id)
            return False
        if self.asks and isinstance(event, MessageReceived) and self.asks.offer(event):
            await inbox.complete(key)
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

    def report(self, ctx: Context[Any], exc: BaseException) -> None:
        """Tell the error listeners about an error no error handler took."""
        for listener in self._listeners:
            listener(ctx, exc)

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` reports about the event path."""
        dispatcher = self.dispatcher
        found = {
            "lanes": dispatcher.lane_count,
            "in_flight": dispatcher.in_flight,
            "asks": len(self.asks),
        }
        if self.cluster is not None:
            found.update(self.cluster.health())
        return found

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
            tg.start_soon(LoopWatchdog(self._user_functions()).run, name="imbot.watchdog")
            # The lifespan is entered and exited in this one scope, so task groups it
            # opens nest properly; shielding it at shutdown lets shutdown finish even
            # while the bot is being cancelled.
            with anyio.CancelScope() as guard:
                manager = await self._start_lifespan(lifespan)
                try:
                    self._accepting = True
                    if self.cluster is None:
                        await self._resume()
                    else:  # its takeover loop resumes what no process runs
                        await tg.start(self.cluster.run)
                    _log.info(
                        "bot started",
                        handle=self.bot.handle,
                        handlers=len(self.bot.handlers()),
                        durable_inbox=self.inbox.durable,
                    )
                    yield self
                finally:
                    guard.shield = True
                    self.handling.stopping.set()  # events waiting to be retried stay pending
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
                    if self.cluster is not None:
                        await self.cluster.release()
                    tg.cancel_scope.cancel()  # whatever a forced stop left running
                    await self._stop_lifespan(manager)

    def _user_functions(self) -> list[object]:
        """The bot's handlers, middleware and error handlers: what a stall warning names."""
        found: list[object] = [spec.func for spec in self.bot.handlers()]
        for router in self.bot.walk():
            found.extend(router.registrations.middlewares)
            found.extend(router.registrations.error_handlers.values())
        return found

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
            # A redelivery of a resumed event is a duplicate, whether it names the envelope
            # or the message; one stored by an older imbot under its envelope id keeps it.
            self.inbox.remember(event.id)
            self.inbox.remember(event_key(event))
            self.handling.resumed(item, event)
            self.dispatcher.submit(event.conversation_id or event.id, event)

    async def replay(self, event_id: str) -> bool:
        """Make a dead letter pending again and queue it on its lane now.

        Args:
            event_id: the key the dead letter is kept under (as ``dead_letters()`` lists
                it), or its event's envelope id (``evt_…``).

        Returns:
            ``False`` when no dead letter has that id.
        """
        inbox = self.inbox
        item = await inbox.requeue(event_id)
        if item is None:
            for letter in await inbox.dead_letters():
                if _envelope_id(letter.raw) == event_id:
                    item = await inbox.requeue(letter.event_id)
                    break
            if item is None:
                return False
        event = parse_event(item.raw)
        _log.info("replaying a dead letter", event_id=event.id, key=item.event_id)
        if self.cluster is not None:
            await self.cluster.take_over()  # requeued at the back of its conversation's queue
            return True
        self.handling.adopt(item.event_id, event)
        self.dispatcher.submit(event.conversation_id or event.id, event)
        return True

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
        store: str | None = None,
    ) -> AsyncIterator[Runtime]:
        """Open the client and the stores the bot was given (or their URLs name); close after.

        ``inbox`` and ``state`` left ``None`` come from ``store`` (``Bot(store=...)``, else
        ``IMBOT_STORE``), else memory. A client or store passed in as an object is the
        caller's to close only if it was not built here: the client given to
        ``Bot(client=...)`` stays open.
        """
        if inbox is None or state is None:
            shared = resolve_store(store)
            inbox = shared if inbox is None else inbox
            state = shared if state is None else state
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
