"""What becomes of one event on its lane: run it, retry it, contain it, or give it up.

::

    handle(event) ──► resumed after a restart? count the start; a crash loop ─► dead letter
        │
        ▼
    attempt: ctx ─► Invoker.run ─► save ctx.state ─► done (inbox.complete)
        │  a transient API error (unreachable, timeout, 429, 5xx)
        ▼
    inbox.failed ─► past the deadline? ─► dead letter (logged, error listeners told)
        │ no
        ▼
    wait (growing, honouring Retry-After; the lane waits too, so the conversation stays in
    order) ─► attempt again; a shutdown meanwhile leaves the event pending for the restart

Every step uses the key the inbox accepted the event under (``event_key``, or the older key
a resumed or replayed event was stored with), so completion, retries and the dead letter
all find it. For a bot with ``on_connect`` handlers, the first attempt also asks whether the
message is a new connection's first (``connections``; that may cost an API call, so the
answer is kept for the retries) and hands it to routing as ``ctx.new_connection``.

For a bot with ``on_turn`` handlers, a message a turn handler takes becomes a turn's first
message: ``imbot.bot.turns`` gathers the messages queued behind it in its lane (``lanes``)
and runs the handler; the events it absorbed are completed when the turn is done, handled
one by one should a retry route the first message elsewhere, and dead letters with it.

Nothing a handler raises stops the bot: any other exception, ``BaseException`` included
(a stray ``CancelledError``, ``SystemExit``, ``KeyboardInterrupt``…), is logged, told to the
error listeners and ends that event only. A real cancellation (shutdown) still cancels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from imbot.bot.connections import Connections
from imbot.bot.context import Context
from imbot.bot.inbox import event_key
from imbot.errors import EventDeadLettered, is_transient
from imbot.events import AnyEvent, MessageReceived, ReactionReceived
from imbot.log import debug_enabled, get_logger
from imbot.routing.table import unhandled_hint

if TYPE_CHECKING:
    from imbot.bot.dispatch import LaneAccess
    from imbot.bot.inbox import Inbox
    from imbot.bot.retry import HandlerRetry
    from imbot.bot.services import Services
    from imbot.bot.turns import TurnRunner
    from imbot.routing.invoke import Invoker
    from imbot.storage.base import PendingEvent

__all__ = ["Handling"]

_log = get_logger("imbot")

_QUIET_WHEN_UNHANDLED = frozenset(("imessage.sent", "imessage.delivered"))

Report = Callable[["Context[Any]", BaseException], None]


def _cancel_requested() -> bool:
    """Whether the running task is being cancelled (not merely hit by a stray cancellation).

    On asyncio, awaiting a future that something else cancelled raises ``CancelledError``
    in a task nobody cancelled; only ``Task.cancelling()`` tells the two apart.
    """
    if anyio.get_cancelled_exc_class() is not asyncio.CancelledError:
        return True  # trio: no stray cancellations to tell apart
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Handling:
    """Runs each event's handler to an outcome: done, retried later, or a dead letter.

    Args:
        services: what each context gets.
        invoker: routes and runs the handler.
        inbox: where the event is pending until done.
        retry: the retry and dead-letter policy.
        report: tells the error listeners.
    """

    __slots__ = (
        "_connections",
        "_inbox",
        "_invoker",
        "_keys",
        "_report",
        "_resumed",
        "_retry",
        "_services",
        "_turns",
        "lanes",
        "stopping",
    )

    def __init__(
        self,
        *,
        services: Services,
        invoker: Invoker,
        inbox: Inbox,
        retry: HandlerRetry,
        report: Report,
    ) -> None:
        self._services = services
        self._invoker = invoker
        self._inbox = inbox
        self._retry = retry
        self._report = report
        self._resumed: dict[str, PendingEvent] = {}
        # Envelope id -> inbox key, for the rare events kept under a key other than
        # event_key(event) (stored by an older imbot under the envelope id).
        self._keys: dict[str, str] = {}
        self._connections = Connections(services.client) if invoker.table.connect else None
        self.stopping = anyio.Event()
        """Set when the bot starts shutting down: retries stop waiting, events stay pending."""
        self.lanes: LaneAccess | None = None
        """The lanes, where turns gather (the runtime sets it); ``None``: a turn per message."""
        self._turns: TurnRunner | None = None
        if invoker.table.turns:
            # Imported only by bots with turn handlers: the others start without it.
            from imbot.bot.turns import TurnRunner

            self._turns = TurnRunner(handling=self, invoker=invoker, services=services, inbox=inbox)
            invoker.turns = self._turns.run

    def resumed(self, item: PendingEvent, event: AnyEvent) -> None:
        """Note an event resumed after a restart: its starts are counted (crash loops)."""
        self._resumed[item.event_id] = item
        self.adopt(item.event_id, event)

    def adopt(self, key: str, event: AnyEvent) -> None:
        """Handle ``event`` under the inbox key it is stored with (resumed or replayed)."""
        if key != event_key(event):
            self._keys[event.id] = key

    def key_of(self, event: AnyEvent) -> str:
        """The inbox key of an event about to be handled (the adopted one, else ``event_key``)."""
        return (self._keys.pop(event.id, None) if self._keys else None) or event_key(event)

    async def absorb(self, event: AnyEvent) -> str:
        """Note an event a turn took from its lane, and return its inbox key.

        A resumed one counts a start, as if it were handled: should the turn keep killing
        the process, all its events become poison dead letters at the same restart.
        """
        key = self.key_of(event)
        if self._resumed and self._resumed.pop(key, None) is not None:
            await self._inbox.started(key)
        return key

    async def handle(self, event: AnyEvent) -> None:
        """Handle one event on its lane until it is done, waits for a restart, or is given up."""
        key = (self._keys.pop(event.id, None) if self._keys else None) or event_key(event)
        if self._resumed and await self._poisoned(event, key):
            return
        turns = self._turns
        if turns is not None and isinstance(event, MessageReceived):
            turns.begin(event, key)  # it may start a turn; the rest of the path is the same
        try:
            attempt = 0
            first_message: list[bool] = []  # known after the first attempt that asked
            while True:
                attempt += 1
                error = await self._attempt(event, key, first_message)
                if error is None:
                    break
                first = await self._inbox.failed(key, _describe(error))
                if time.time() - first >= self._retry.deadline:
                    await self._bury(event, key, "deadline", attempt, error)
                    return
                delay = self._retry.delay(attempt, getattr(error, "retry_after", None))
                _log.warning(
                    "handler failed on a transient API error; the event will run again",
                    event_id=event.id,
                    conversation_id=event.conversation_id,
                    attempt=attempt,
                    retry_in=round(delay, 2),
                    error=_describe(error),
                )
                with anyio.move_on_after(delay):
                    await self.stopping.wait()
                    _log.warning(
                        "shutting down while an event waits to be retried",
                        event_id=event.id,
                        outcome="retried after restart" if self._inbox.durable else "not handled",
                    )
                    return  # a turn's absorbed events stay pending too: it forms again
            try:
                await self._inbox.complete(key)
            except Exception:
                _log.exception("inbox.complete failed", event_id=event.id)
            await self._services.forget_answers(key)
        finally:
            left = turns.end(event) if turns is not None else None
        if left:  # a turn taken on a retry routed its first message elsewhere: one by one
            for absorbed_key, absorbed in left:
                self.adopt(absorbed_key, absorbed)
                await self.handle(absorbed)

    async def _poisoned(self, event: AnyEvent, key: str) -> bool:
        item = self._resumed.pop(key, None)
        if item is None:
            return False
        starts = await self._inbox.started(key)
        if starts < self._retry.poison_after:
            return False
        # The run before each restart died with the process: `starts` runs in a row.
        detail = f"its handling was under way each of the last {starts} times the process died"
        await self._bury(event, key, "poison", starts, None, detail=detail)
        return True

    async def _attempt(
        self, event: AnyEvent, key: str, first_message: list[bool]
    ) -> BaseException | None:
        """Run the event's handler once; return a transient error to retry, else ``None``.

        ``first_message`` holds whether the event is a new connection's first message once
        that is known: asked once per event (it may cost an API call), kept across retries.
        """
        ctx: Context[AnyEvent] = Context(self._services, event, key=key)
        try:
            connections = self._connections
            if connections is not None and isinstance(event, MessageReceived):
                if not first_message:
                    first_message.append(await connections.is_first_message(event))
                ctx.new_connection = first_message[0]
            if self._services.loads_by_awaiting:
                await ctx.load_state()  # a filter may route on state, and cannot await it
            if not await self._invoker.run(ctx):
                self._log_unhandled(event)
            await ctx.save_state()  # not after a failure: a retry starts from the saved state
        except Exception as exc:
            if is_transient(exc):
                return exc
            _log.error("event handling failed", event_id=event.id, exc_info=exc)
            self._report(ctx, exc)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()) and _cancel_requested():
                raise  # a real cancellation: the bot is stopping
            _log.error(
                "a handler raised a BaseException; it ends this event only",
                event_id=event.id,
                handler=ctx.handler_name,
                error=_describe(exc),
                exc_info=exc,
            )
            self._report(ctx, exc)
        return None

    async def _bury(
        self,
        event: AnyEvent,
        key: str,
        reason: str,
        attempts: int,
        cause: BaseException | None,
        *,
        detail: str | None = None,
    ) -> None:
        detail = detail or (_describe(cause) if cause else reason)
        await self._inbox.dead_letter(key, reason=reason, error=detail, attempts=attempts)
        if self._turns is not None and isinstance(event, MessageReceived):
            also = f"part of the turn of {key}, which became a dead letter: {detail}"
            for absorbed_key, _ in self._turns.end(event):
                await self._inbox.dead_letter(
                    absorbed_key, reason=reason, error=also, attempts=attempts
                )
        error = EventDeadLettered(event.id, reason, attempts, detail)
        error.__cause__ = cause
        _log.error(
            "event became a dead letter",
            event_id=event.id,
            key=key,
            conversation_id=event.conversation_id,
            reason=reason,
            attempts=attempts,
            error=detail,
        )
        self._report(Context(self._services, event, key=key), error)

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
        if isinstance(event, ReactionReceived) and event.data.reaction.direction != "inbound":
            return  # the echo of the bot's own tapback: on_tapback ignores it by design
        _log.info(
            "no handler for event",
            event_type=event_type,
            event_id=event.id,
            add=unhandled_hint(event_type),
        )
