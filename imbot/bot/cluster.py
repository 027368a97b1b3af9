"""Lanes shared by several processes: the event path when the inbox is shared (Redis).

::

    feed ─► admit (one script: dedupe, answer a ctx.ask, queue, try the lease)
             │ leased here                         │ queued: the lane's holder runs it
             ▼
    dispatcher lane ─► Handling ─► advance (one script: complete, hand out the next
             ▲                      │ event of the conversation, or drop the lease)
             └──────── next ────────┘

Each conversation runs in the one process holding its lease, one event at a time, in the
order the events were first accepted anywhere; different conversations run in parallel
across the processes. Two round trips per event (admit, advance); a handout also carries
the conversation's state when the state store is the Redis one, so ``ctx.state`` costs
none. Background loops renew this process's leases (every lease/3), take over the
conversations whose holder is gone (every ~lease/2; a process killed with ``kill -9``),
and read the answers to its ``ctx.ask`` questions and the notices for its turns.

An event handed out again after its lane died counts a start, as after a restart, so an
event that kills every process that runs it becomes a dead letter (``Handling``'s rules).
Redis going away stops nothing: ``feed`` raises ``StoreUnavailable`` (the webhook answers
503), and lanes and loops wait with backoff, log once, and go on when it is back. Lanes
stopping finish their running event and drop their leases: the others take over at once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel

from imbot.bot.asks import SharedAskRegistry, ask_sender
from imbot.bot.cluster_lanes import LaneInbox, QueueView
from imbot.bot.inbox import Inbox, event_key
from imbot.bot.retry import Backoff
from imbot.errors import MalformedEvent, SetupError, StoreUnavailable
from imbot.events import AnyEvent, MessageReceived, parse_event
from imbot.log import get_logger
from imbot.storage.base import PendingEvent
from imbot.storage.redis_lanes import DUPLICATE, LOST, QUEUED, Handout, RedisLanes
from imbot.storage.redis_state import RedisStateStore

if TYPE_CHECKING:
    from imbot.bot.dispatch import Dispatcher
    from imbot.bot.handling import Handling
    from imbot.storage.base import StateStore
    from imbot.storage.redis_inbox import RedisInboxStore

__all__ = ["Cluster"]

_log = get_logger("imbot")

_TAKE_BATCH = 64  # conversations claimed per takeover call
_RENEW_BATCH = 1000  # leases renewed per script call


class Cluster:
    """The lanes of one process of a bot whose processes share a Redis inbox.

    Build it, hand ``asks`` and ``inbox`` to the services and ``Handling``, build the
    dispatcher over ``step``, then ``attach`` both; ``run`` the loops on a task group.

    Attributes:
        lanes: the Redis side (scripts, this process's token).
        inbox: the inbox ``Handling`` uses (``LaneInbox``).
        asks: the open ``ctx.ask`` questions, registered in Redis too.
        queues: ``LaneAccess`` over the queues of the lanes held here (for turns).
        held: the conversations whose lane this process holds now.
    """

    def __init__(self, store: RedisInboxStore, state_store: StateStore) -> None:
        """Prepare the lanes on ``store``; preload states when ``state_store`` is Redis's own."""
        preload = (
            isinstance(state_store, RedisStateStore)
            and state_store.target.url == store.target.url
            and state_store.prefix == store.prefix
        )
        self.lanes = RedisLanes(store, want_state=preload)
        self.states = state_store if isinstance(state_store, RedisStateStore) and preload else None
        self.inbox = LaneInbox(store)
        self.asks = SharedAskRegistry(self.lanes)
        self.queues = QueueView(self.lanes)
        self.held: set[str] = set()
        self._lease = store.target.lease
        self._handling: Handling | None = None
        self._dispatcher: Dispatcher | None = None
        self._keys: dict[str, str] = {}  # envelope id -> key, when not event_key(event)
        self._lost: set[str] = set()  # held lanes whose lease loss was logged
        self._orphans: list[str] = []  # handed out while shutting down: to release
        self._down = False

    def attach(self, handling: Handling, dispatcher: Dispatcher) -> None:
        """Give the cluster the handling and the dispatcher its lanes run on."""
        self._handling = handling
        self._dispatcher = dispatcher
        self.queues.attach(handling)

    # ------------------------------------------------------------------ events

    async def feed(self, event: AnyEvent, raw: bytes, local: Inbox) -> bool:
        """Admit one webhook's event; start its lane here if this process got the lease.

        Args:
            event: the parsed event.
            raw: its body.
            local: the runtime's inbox, for the envelopes this process saw.

        Returns:
            ``True`` for a new event, ``False`` for a duplicate.

        Raises:
            StoreUnavailable: Redis cannot be reached (the webhook answers 503).
        """
        envelope = event.id
        if local.recalls(envelope):
            return False
        key = event_key(event)
        sender = ask_sender(event) if isinstance(event, MessageReceived) else ""
        result = await self.lanes.admit(key, raw, event.conversation_id or envelope, sender)
        self._up()
        if result == DUPLICATE:
            return False
        if key != envelope:
            local.remember(envelope)
        if isinstance(result, Handout):
            await self._begin(result, event)
        elif result == QUEUED:
            self.queues.queued_here(event.conversation_id or envelope, key, event)
        return True

    async def step(self, event: AnyEvent) -> None:
        """Run one event on its lane (the dispatcher's handler), then advance the lane."""
        handling, dispatcher = self._handling, self._dispatcher
        assert handling is not None and dispatcher is not None, "Cluster.attach() first"
        conversation = event.conversation_id or event.id
        key = (self._keys.pop(event.id, None) if self._keys else None) or event_key(event)
        states = self.states
        try:
            await handling.handle(event)
        except StoreUnavailable as exc:
            # Its outcome could not be written: once Redis is back the lane hands the event
            # out again (or learns another process has the conversation now).
            self._outage(exc)
            self.queues.taken(conversation)
            if states is not None:
                states.take_deferred(conversation)  # the run starts over from the stored state
            result = await self._advance(conversation, (), release=not dispatcher.accepting)
            await self._follow(conversation, result, retry_of=key)
            return
        finished = self.inbox.finished
        done = [k for k in (key, *self.queues.taken(conversation)) if k in finished]
        finished.difference_update(done)
        if len(finished) > 1024:  # keys completed outside any lane's turn: nothing reads them
            finished.clear()
        state = states.take_deferred(conversation) if states is not None else None
        # Not finished: the bot is stopping while it waited to be retried; it stays queued,
        # and its state change (if any) goes with it.
        stop = key not in done or not dispatcher.accepting
        result = await self._advance(
            conversation, done, release=stop, state=state if key in done else None
        )
        await self._follow(conversation, result, retry_of=key)

    # ------------------------------------------------------------------ lanes

    async def _begin(self, handout: Handout, event: AnyEvent | None = None) -> None:
        """Start a lane whose lease this process just got, at ``handout``."""
        if handout.conversation_id in self.held:
            # Its lease had lapsed under the lane running here, which goes on by itself.
            return
        await self._follow(handout.conversation_id, handout, first=event)

    def _queue(self, handout: Handout, event: AnyEvent, *, retry_of: str = "") -> None:
        handling, dispatcher = self._handling, self._dispatcher
        assert handling is not None and dispatcher is not None
        conversation = handout.conversation_id
        self.held.add(conversation)
        self._lost.discard(conversation)
        if self.states is not None:
            self.states.preload(conversation, handout.state, handout.version)
        key = handout.key
        if key != event_key(event):
            self._keys[event.id] = key
            handling.adopt(key, event)
        if handout.resumed and key != retry_of:
            # Its last lane died with it: count a start, as after a restart (crash loops).
            handling.resumed(PendingEvent(key, handout.raw or b""), event)
        try:
            dispatcher.submit(conversation, event)
        except SetupError:  # shutting down: leave it to the other processes
            self.held.discard(conversation)
            if self.states is not None:
                self.states.forget(conversation)
            self._orphans.append(conversation)

    async def _follow(
        self,
        conversation: str,
        result: int | Handout,
        retry_of: str = "",
        first: AnyEvent | None = None,
    ) -> None:
        """Queue the lane's next event (``first``: parsed already), or end the lane.

        ``retry_of`` is the key of the event that just ran: handed out again (its outcome
        could not be written, or its state had moved on), it runs again without counting a
        start against it.
        """
        if isinstance(result, Handout) and result.conflict:
            _log.info(
                "the conversation's state changed elsewhere; the event runs again",
                conversation_id=conversation,
                event_id=retry_of,
            )
        while isinstance(result, Handout):
            if result.raw is None and first is not None:
                self._queue(result, first, retry_of=retry_of)
                return
            kept = self.queues.parsed(result.key)
            if kept is not None:
                self._queue(result, kept, retry_of=retry_of)
                return
            try:
                parsed = parse_event(result.raw or b"")
            except MalformedEvent as exc:
                _log.error(
                    "dropping an unreadable pending event", event_id=result.key, error=str(exc)
                )
                result = await self._advance(conversation, (result.key,), release=False)
                continue
            self._queue(result, parsed, retry_of=retry_of)
            return
        self._end(conversation, result)

    def _end(self, conversation: str, result: int | Handout) -> None:
        self.held.discard(conversation)
        if self.states is not None:
            self.states.forget(conversation)
        if result == LOST and conversation not in self._lost:
            _log.warning(
                "lost the lease of a conversation: another process runs it now",
                conversation_id=conversation,
            )
        self._lost.discard(conversation)

    async def _advance(
        self,
        conversation: str,
        done: Sequence[str],
        *,
        release: bool,
        state: tuple[str, int] | None = None,
    ) -> int | Handout:
        """``lanes.advance``, retried until Redis answers (the lane waits meanwhile)."""
        backoff = Backoff()
        while True:
            try:
                result = await self.lanes.advance(conversation, done, release=release, state=state)
            except StoreUnavailable as exc:
                self._outage(exc)
                await backoff.pause()
                continue
            self._up()
            return result

    # ------------------------------------------------------------------ loops

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew leases, take over orphaned lanes, read answers and notices, until cancelled."""
        async with anyio.create_task_group() as tg:
            self.asks.bind(tg)
            tg.start_soon(self._renew_loop, name="imbot.cluster.renew")
            tg.start_soon(self._takeover_loop, name="imbot.cluster.takeover")
            tg.start_soon(self.asks.listen, self._late_answer, self._outage, name="imbot.asks")
            tg.start_soon(self.queues.listen, self._outage, name="imbot.cluster.notices")
            task_status.started()

    async def take_over(self) -> int:
        """Claim conversations with queued events and no lane; return how many.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        dispatcher = self._dispatcher
        if dispatcher is None or not dispatcher.accepting:
            return 0
        limit = max(1, min(_TAKE_BATCH, 4 * dispatcher.max_concurrency - len(self.held)))
        taken = await self.lanes.take_over(limit)
        self._up()
        for handout in taken:
            await self._begin(handout)
        return len(taken)

    async def release(self) -> None:
        """Drop every lease this process holds (at shutdown): others take over at once."""
        held = sorted(self.held.union(self._orphans))
        self.held.clear()
        self._orphans.clear()
        for start in range(0, len(held), _RENEW_BATCH):
            try:
                await self.lanes.release(held[start : start + _RENEW_BATCH])
            except StoreUnavailable as exc:
                _log.warning("could not release leases; they expire by themselves", error=str(exc))
                return

    async def _renew_loop(self) -> None:
        interval = self._lease / 3
        while True:
            await anyio.sleep(interval)
            try:
                asked = await self.renew()
            except StoreUnavailable as exc:
                self._outage(exc)
                continue
            if asked:  # holding nothing proves nothing about Redis: no "reachable again"
                self._up()

    async def renew(self) -> bool:
        """Extend the leases held here, take back lapsed ones nobody took; ``False``: none held.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        orphans, self._orphans = self._orphans, []
        if orphans:
            await self.lanes.release(orphans)
        held = list(self.held)
        if not held:
            return bool(orphans)
        for start in range(0, len(held), _RENEW_BATCH):
            lost, retaken = await self.lanes.renew(held[start : start + _RENEW_BATCH])
            # No await from the reply to here: a lane that ended before this renew ran in
            # Redis has already left `held` (its reply came first), so it was taken back by
            # mistake and is released; one that ends later finds the lease its own.
            phantoms = [c for c in retaken if c not in self.held]
            for conversation in lost:
                if conversation in self.held and conversation not in self._lost:
                    self._lost.add(conversation)
                    _log.warning(
                        "a lease lapsed while its event ran; another process may run it too",
                        conversation_id=conversation,
                        lease=self._lease,
                    )
            if phantoms:
                await self.lanes.release(phantoms)
        return True

    async def _takeover_loop(self) -> None:
        backoff = Backoff()
        while True:
            try:
                if await self.take_over() >= _TAKE_BATCH:
                    await anyio.lowlevel.checkpoint()
                    continue
                backoff.reset()
            except StoreUnavailable as exc:
                self._outage(exc)
                await backoff.pause()
                continue
            await anyio.sleep(self._lease / 2 * random.uniform(0.75, 1.25))

    async def _late_answer(self, raw: bytes) -> None:
        """An answer whose question closed as it came: queue it as an ordinary message."""
        try:
            event = parse_event(raw)
        except MalformedEvent:
            return
        conversation = event.conversation_id or event.id
        while True:
            try:
                result = await self.lanes.admit(event_key(event), raw, conversation, "", force=True)
                break
            except StoreUnavailable as exc:
                self._outage(exc)
                await anyio.sleep(1.0)
        if isinstance(result, Handout):
            await self._begin(result, event)

    def _outage(self, exc: StoreUnavailable) -> None:
        if not self._down:
            self._down = True
            _log.warning("Redis is unreachable; lanes wait and retry", error=str(exc))

    def _up(self) -> None:
        if self._down:
            self._down = False
            _log.info("Redis is reachable again; lanes go on")

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` adds for a shared inbox: lanes held here, and whether Redis answers."""
        return {"leased": len(self.held), "store": "unavailable" if self._down else "ok"}
