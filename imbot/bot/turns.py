"""Turns at run time: gather a burst in the conversation's lane, run the handler, restart it.

Routing chose an ``on_turn`` handler for a message (``imbot.routing.turns``); the invoker
hands it here (``TurnRunner.run``)::

    gather ──► run the handler (ctx.turn, ctx.event = the last message) ──► save state,
      ▲            │ while it runs: a message that would join arrives       complete the
      │            │ and nothing was sent yet                               absorbed events
      └─ restarts ◄┘ cancel the run (its state is dropped), restarts += 1

Gathering happens in the conversation's lane (``LaneAccess``): the events queued behind the
first message, and those arriving, are looked at from the front. A message joins when it
names no command, passes the handler's filters and fits ``max_messages``/``max_chars``; a
human's tapback joins; the bot's own echoes and receipts are handled in their place and
gathering goes on; anything else ends it, and is handled after the turn, in order. It stops
after ``quiet`` seconds with nothing joining, ``max_wait`` after it began, or when full.

A taken event is not complete in the inbox until the turn is done: the absorbed events are
completed after the handler's last run (the first one by ``Handling``, as any event), so a
crash leaves them pending and the turn forms again after the restart. Its sends are keyed
on its messages' keys (``_send_key``), so a turn run again sends nothing twice, and one
formed again with a message that came after its reply answers that message too. A
transient API error retries the whole turn (the absorbed events are kept for it).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import anyio

from imbot.bot.context import Context
from imbot.bot.dispatch import lane_key
from imbot.bot.inbox import event_key
from imbot.errors import is_transient
from imbot.events import MessageReceived, ReactionReceived
from imbot.log import get_logger
from imbot.routing.filters import check
from imbot.routing.turns import Turn, TurnOptions, TurnSpec

if TYPE_CHECKING:
    from imbot.bot.dispatch import LaneAccess
    from imbot.bot.handling import Handling
    from imbot.bot.inbox import Inbox
    from imbot.bot.services import Services
    from imbot.events import AnyEvent
    from imbot.routing.filters import Filter
    from imbot.routing.handlers import HandlerSpec
    from imbot.routing.invoke import Invoker

__all__ = ["TurnRunner"]

_log = get_logger("imbot")

# What becomes of an event found in the lane while a turn gathers.
_JOIN, _OTHER, _STOP = range(3)
_PEEK = 256  # events looked at behind a running turn; past that it is not interrupted


class _Open:
    """One turn being handled: its first message's inbox key, lane, turn and absorbed keys."""

    __slots__ = ("absorbed", "key", "lane", "turn")

    def __init__(self, key: str, lane: str) -> None:
        self.key = key
        self.lane = lane
        self.turn: Turn | None = None
        self.absorbed: list[tuple[str, AnyEvent]] = []


def _send_key(record: _Open) -> str:
    """The key a turn's sends are numbered under: its first message's, and who joined it.

    A turn formed again after a crash with the same messages sends under the same keys, so
    nothing goes out twice. Formed with a message that came after its reply went out, it
    is a new turn: a new key, and an answer that covers the late message too.
    """
    if not record.absorbed:
        return record.key
    joined = "\n".join(key for key, _ in record.absorbed)
    return f"{record.key}+{hashlib.blake2b(joined.encode(), digest_size=8).hexdigest()}"


class TurnRunner:
    """Gathers and runs turns; ``Handling`` makes one when the bot has ``on_turn`` handlers.

    Args:
        handling: the event path: the lanes, keys, inline handling, shutdown.
        invoker: runs each run of the handler (``Invoker.call``).
        services: what each context gets.
        inbox: where the absorbed events are completed.
    """

    __slots__ = ("_handling", "_inbox", "_invoker", "_open", "_services")

    def __init__(
        self, *, handling: Handling, invoker: Invoker, services: Services, inbox: Inbox
    ) -> None:
        self._handling = handling
        self._invoker = invoker
        self._services = services
        self._inbox = inbox
        self._open: dict[str, _Open] = {}

    # ------------------------------------------------------------------ Handling's side

    def begin(self, event: MessageReceived, key: str) -> None:
        """A message's handling starts: it may become a turn's first message."""
        self._open[event.id] = _Open(key, lane_key(event))

    def end(self, event: AnyEvent) -> list[tuple[str, AnyEvent]]:
        """An event's handling ended; return what its turn absorbed and did not complete."""
        found = self._open.pop(event.id, None)
        return found.absorbed if found is not None else []

    # ------------------------------------------------------------------ the invoker's hook

    async def run(self, ctx: Context[Any], spec: HandlerSpec) -> bool:
        """Gather the turn that starts with ``ctx``'s message, and run ``spec`` on it.

        Returns:
            ``True``: the turn's messages go to no other handler.
        """
        assert isinstance(spec, TurnSpec)
        event: MessageReceived = ctx.event
        record = self._open.get(event.id)
        if record is None:  # only Handling calls this, after begin(); a turn all the same
            record = _Open(event_key(event), lane_key(event))
        options = spec.options
        if record.turn is None:
            record.turn = Turn(event)
            await ctx.save_state()  # what a greeting or a filter changed comes first
            await self._gather(record, spec, options)
        elif not record.turn.sent:
            await self._gather(record, spec, options)  # run again after a transient error
        turn = record.turn
        while True:
            run = await self._context(ctx, record, turn)
            if await self._run_once(run, spec, record, turn, options):
                break
            turn.restarts += 1
            _log.info(
                "a new message interrupted the turn; running it again",
                conversation_id=event.conversation_id,
                handler=spec.name,
                restarts=turn.restarts,
            )
            await self._gather(record, spec, options)
        try:
            await run.save_state()
        except Exception as exc:
            if not is_transient(exc):  # reported as the handler's; the turn is still done
                await self._complete(record)
            raise
        await self._complete(record)
        return True

    async def _complete(self, record: _Open) -> None:
        await self._services.forget_answers(_send_key(record))  # the runs' ctx.ask answers
        for key, _ in record.absorbed:
            try:
                await self._inbox.complete(key)
            except Exception:
                _log.exception("inbox.complete failed", key=key)
        record.absorbed.clear()

    async def _context(self, first: Context[Any], record: _Open, turn: Turn) -> Context[Any]:
        # A fresh context per run: a cancelled run's state changes are never saved.
        ctx: Context[Any] = Context(self._services, turn.last, key=_send_key(record))
        ctx.turn = turn
        ctx.new_connection = first.new_connection
        ctx.match = first.match
        if self._services.loads_by_awaiting:
            await ctx.load_state()
        return ctx

    async def _run_once(
        self, ctx: Context[Any], spec: TurnSpec, record: _Open, turn: Turn, options: TurnOptions
    ) -> bool:
        """Run the handler once; ``False`` when a new message interrupted it."""
        lanes = self._handling.lanes
        if not options.interrupt or lanes is None or turn.sent:
            await self._call(ctx, spec)
            return True
        interrupted = False
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            scope = tg.cancel_scope

            async def watch() -> None:
                nonlocal interrupted
                try:
                    found = await self._interrupting(lanes, record, spec, turn, options)
                except Exception:
                    _log.exception("watching a turn for new messages failed; it runs on")
                    return
                if found and not turn.sent:  # checked and cancelled with no await between
                    interrupted = True
                    scope.cancel()

            tg.start_soon(watch, name="imbot.turn.watch")
            try:
                await self._call(ctx, spec)
            except Exception as exc:  # a transient error: raised below, not as a group
                error = exc
            scope.cancel()
        if error is not None:
            raise error
        return not interrupted

    async def _call(self, ctx: Context[Any], spec: TurnSpec) -> None:
        if not await self._invoker.call(ctx, spec):
            _log.info(
                "a turn handler called ctx.skip(); a turn goes to no other handler",
                handler=spec.name,
                conversation_id=ctx.conversation_id,
            )

    # ------------------------------------------------------------------ the lane

    async def _gather(self, record: _Open, spec: TurnSpec, options: TurnOptions) -> None:
        """Take the events that join the turn from the lane until quiet, max_wait or full."""
        lanes = self._handling.lanes
        turn = record.turn
        if lanes is None or turn is None:
            return
        stopping = self._handling.stopping
        last = anyio.current_time()
        deadline = last + options.max_wait
        while len(turn.messages) < options.max_messages:
            queued = await lanes.peek(record.lane, 1)
            if queued:
                verdict = await self._verdict(queued[0], spec, turn, options)
                if verdict == _STOP:
                    return
                event = await lanes.take(record.lane)
                if event is None:
                    return
                if verdict == _OTHER:
                    await self._handling.handle(event)  # the bot's own echo, in its place
                    continue
                key = await self._handling.absorb(event)
                record.absorbed.append((key, event))
                assert isinstance(event, MessageReceived | ReactionReceived)
                turn.add(event)
                last = anyio.current_time()
                continue
            if stopping.is_set():
                return
            left = min(last + options.quiet, deadline) - anyio.current_time()
            if left <= 0 or not await lanes.wait(record.lane, left):
                return

    async def _interrupting(
        self,
        lanes: LaneAccess,
        record: _Open,
        spec: TurnSpec,
        turn: Turn,
        options: TurnOptions,
    ) -> bool:
        """Wait until a message that would join the turn is queued; ``False``: none can."""
        seen = 0
        while not turn.sent:
            await lanes.wait(record.lane, None, beyond=seen)
            if turn.sent:
                break
            queued = await lanes.peek(record.lane, _PEEK)
            seen = len(queued)
            for event in queued:
                verdict = await self._verdict(event, spec, turn, options)
                if verdict == _STOP:
                    return False  # nothing behind it can join this turn
                if verdict == _JOIN and isinstance(event, MessageReceived):
                    return True
            if seen >= _PEEK:
                break
        return False

    async def _verdict(
        self, event: AnyEvent, spec: TurnSpec, turn: Turn, options: TurnOptions
    ) -> int:
        """Whether an event found behind the turn joins it, is handled in place, or ends it."""
        if isinstance(event, ReactionReceived):
            return _JOIN if event.data.reaction.direction == "inbound" else _OTHER
        if not isinstance(event, MessageReceived):
            return _OTHER
        message = event.data.message
        if message.direction == "outbound":
            return _OTHER
        if not turn.fits(message, options):
            return _STOP
        if self._invoker.table.match(event)[0] is not None:
            return _STOP  # a command runs on its own, after the turn
        if spec.filter is not None and not await self._passes(spec.filter, event):
            return _STOP
        return _JOIN

    async def _passes(self, flt: Filter, event: MessageReceived) -> bool:
        probe: Context[Any] = Context(self._services, event)
        try:
            if self._services.loads_by_awaiting:
                await probe.load_state()
            return await check(flt, probe)
        except Exception:
            # Routed on its own after the turn, where the filter's error is reported.
            return False
