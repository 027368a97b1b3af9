"""Open ``ctx.ask`` questions: a message that answers one goes to the asking handler only.

``Bot.feed`` offers each new inbound message here *before* queueing it: the asking handler
holds its conversation's lane, so the answer must not wait in that lane.

With a shared inbox (several processes on Redis) the answer may reach another process:
``SharedAskRegistry`` also registers each question in Redis, where the admission script of
any process finds it and sends the answer to the asking process (``imbot.bot.cluster``
reads it and calls ``deliver``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from imbot.bot.retry import Backoff
from imbot.errors import ImbotError, MalformedEvent, StoreUnavailable
from imbot.events import MessageReceived, parse_event
from imbot.log import get_logger

if TYPE_CHECKING:
    import asyncio

    from imbot.models import Message
    from imbot.storage.redis_lanes import RedisLanes

__all__ = ["AskRegistry", "SharedAskRegistry", "Waiter", "ask_sender"]

_log = get_logger("imbot")


def ask_sender(event: MessageReceived) -> str:
    """Who an inbound message comes from, as questions are keyed; ``""`` for an outbound one."""
    message = event.data.message
    if message.direction == "outbound":
        return ""
    return message.sender_number or message.remote_number or ""


class Waiter:
    """One open question: set once the answer arrives.

    Attributes:
        answered: set when the answer arrives.
        message: the answer, once it arrived.
    """

    __slots__ = ("answered", "message", "token")

    def __init__(self) -> None:
        self.answered = anyio.Event()
        self.message: Message | None = None
        self.token = ""


class AskRegistry:
    """Open ``ctx.ask`` questions, by conversation and sender."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Waiter] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def open(self, conversation_id: str, sender: str) -> Waiter:
        """Start waiting for the next message of ``sender`` in ``conversation_id``.

        Raises:
            ImbotError: a question is already open there.
        """
        key = (conversation_id, sender)
        if key in self._open:
            raise ImbotError(
                f"ctx.ask is already waiting for {sender} in conversation {conversation_id}"
            )
        waiter = Waiter()
        self._open[key] = waiter
        return waiter

    async def registered(self, waiter: Waiter) -> None:
        """Return once an answer to ``waiter``'s question can reach it (at once, here)."""

    def close(self, conversation_id: str, sender: str, waiter: Waiter) -> None:
        """Stop waiting (answered, timed out or cancelled)."""
        key = (conversation_id, sender)
        if self._open.get(key) is waiter:
            del self._open[key]

    def offer(self, event: MessageReceived) -> bool:
        """Hand an inbound message to the question waiting for it, if there is one.

        Returns:
            ``True`` when it answered a question (route it nowhere else).
        """
        sender = ask_sender(event)
        if not sender:
            return False
        message = event.data.message
        waiter = self._open.pop((message.conversation_id, sender), None)
        if waiter is None:
            return False
        waiter.message = message
        waiter.answered.set()
        return True


class SharedAskRegistry(AskRegistry):
    """Open questions that any process of a shared-inbox bot can answer.

    ``open`` stays synchronous: it starts the registration in Redis, and ``ctx.ask`` awaits
    ``registered`` before it sends its prompt, so an answer, however quick and whichever
    process takes it, finds the question. A question closed at the moment its answer was
    accepted elsewhere is not lost: ``deliver`` says so and the cluster queues the answer
    as an ordinary message.
    """

    __slots__ = (
        "_chores",
        "_chores_due",
        "_count",
        "_lanes",
        "_late",
        "_ready",
        "_registered",
        "_tg",
        "_tokens",
        "_wake",
    )

    def __init__(self, lanes: RedisLanes) -> None:
        """Register questions through ``lanes``; ``bind`` a task group before the first."""
        super().__init__()
        self._lanes = lanes
        self._tg: anyio.abc.TaskGroup | None = None
        self._tokens: dict[str, tuple[str, str, Waiter]] = {}
        self._registered: set[str] = set()
        self._ready: dict[str, anyio.Event] = {}  # set once Redis has the question
        self._count = 0
        self._late = 0
        self._wake = anyio.Event()
        self._chores: deque[Callable[[], Coroutine[Any, Any, None]]] = deque()
        self._chores_due: anyio.Event | None = None

    def bind(self, tg: anyio.abc.TaskGroup) -> None:
        """Run registrations on ``tg`` (the cluster's task group); call it from a task."""
        self._tg = tg
        self._chores_due = anyio.Event()
        tg.start_soon(self._run_chores, name="imbot.asks.chores")

    def _later(self, chore: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # A future's done-callback runs outside any task, where anyio cannot tell which
        # event loop it is on (under plain asyncio.run): it only notes the work here.
        self._chores.append(chore)
        if self._chores_due is not None:
            self._chores_due.set()

    async def _run_chores(self) -> None:
        assert self._tg is not None
        while True:
            while self._chores:
                self._tg.start_soon(self._chores.popleft())
            self._chores_due = anyio.Event()
            if not self._chores:  # one noted between the two lines above is not missed
                await self._chores_due.wait()

    @property
    def listening(self) -> bool:
        """Whether an answer may be on its way to this process."""
        return bool(self._tokens) or self._late > 0

    async def wait_listening(self) -> None:
        """Return once a question is open here (or an answer to a closed one is due)."""
        while not self.listening:
            self._wake = anyio.Event()
            await self._wake.wait()

    def open(self, conversation_id: str, sender: str) -> Waiter:
        """Start waiting for ``sender``'s next message in the conversation, in any process.

        Raises:
            ImbotError: a question is already open there.
        """
        waiter = super().open(conversation_id, sender)
        self._count += 1
        waiter.token = f"{self._count}"
        self._tokens[waiter.token] = (conversation_id, sender, waiter)
        self._ready[waiter.token] = anyio.Event()
        queued = self._lanes.ask_open_nowait(conversation_id, sender, waiter.token)
        if queued is not None:
            queued.add_done_callback(
                lambda done: self._opened(done, conversation_id, sender, waiter)
            )
        elif self._tg is not None:
            self._tg.start_soon(self._register, conversation_id, sender, waiter)
        self._wake.set()
        return waiter

    def _opened(
        self, done: asyncio.Future[object], conversation_id: str, sender: str, waiter: Waiter
    ) -> None:
        token = waiter.token
        if done.cancelled() or done.exception() is not None:
            if token in self._tokens:
                self._later(partial(self._register, conversation_id, sender, waiter))
        elif token in self._tokens:
            self._now_registered(token)
        elif waiter.message is None:
            # Closed unanswered before Redis had it: take the question back.
            self._later(partial(self._unregister, conversation_id, sender, token))

    async def registered(self, waiter: Waiter) -> None:
        """Return once Redis has the question (an answer reaching any process finds it).

        Waits while Redis is unreachable: no process could take the answer meanwhile.
        """
        ready = self._ready.get(waiter.token)
        if ready is not None:
            await ready.wait()

    def _now_registered(self, token: str) -> None:
        self._registered.add(token)
        ready = self._ready.pop(token, None)
        if ready is not None:
            ready.set()

    def close(self, conversation_id: str, sender: str, waiter: Waiter) -> None:
        """Stop waiting here and in Redis (answered, timed out or cancelled)."""
        super().close(conversation_id, sender, waiter)
        token = waiter.token
        self._ready.pop(token, None)
        if self._tokens.pop(token, None) is None or token not in self._registered:
            return  # answered, or its registration (still under way) will undo itself
        self._registered.discard(token)
        if self._tg is not None:
            self._tg.start_soon(self._unregister, conversation_id, sender, token)

    async def listen(
        self,
        requeue: Callable[[bytes], Awaitable[None]],
        outage: Callable[[StoreUnavailable], None],
    ) -> None:
        """Read the answers Redis sends this process's questions, until cancelled.

        Args:
            requeue: queues an answer whose question closed as it came, as an ordinary
                message.
            outage: told when Redis cannot be reached (the loop retries with backoff).
        """
        backoff = Backoff()
        while True:
            await self.wait_listening()
            try:
                answer = await self._lanes.next_answer(1.0)
            except StoreUnavailable as exc:
                outage(exc)
                await backoff.pause()
                continue
            backoff.reset()
            if answer is not None and not self.deliver(*answer):
                await requeue(answer[1])

    def deliver(self, token: str, raw: bytes) -> bool:
        """Hand an answer read from Redis to its waiter.

        Returns:
            ``False`` when the waiter is gone (it timed out as the answer came): the caller
            queues the message as an ordinary one.
        """
        entry = self._tokens.pop(token, None)
        if entry is None:
            self._late = max(0, self._late - 1)
            return False
        conversation_id, sender, waiter = entry
        self._registered.discard(token)
        self._ready.pop(token, None)
        try:
            event = parse_event(raw)
        except MalformedEvent:
            _log.error("dropping an unreadable ctx.ask answer", conversation_id=conversation_id)
            return True
        if not isinstance(event, MessageReceived):
            return False
        super().close(conversation_id, sender, waiter)
        waiter.message = event.data.message
        waiter.answered.set()
        return True

    async def _register(self, conversation_id: str, sender: str, waiter: Waiter) -> None:
        backoff = Backoff(0.1, 2.0)
        token = waiter.token
        while token in self._tokens:
            try:
                await self._lanes.ask_open(conversation_id, sender, token)
            except StoreUnavailable as exc:
                if not backoff.failures:
                    _log.warning(
                        "ctx.ask cannot register its question yet; retrying",
                        conversation_id=conversation_id,
                        error=str(exc),
                    )
                await backoff.pause()
                continue
            if token in self._tokens:
                self._now_registered(token)
            elif waiter.message is None:  # closed unanswered while registering: take it back
                await self._unregister(conversation_id, sender, token)
            return

    async def _unregister(self, conversation_id: str, sender: str, token: str) -> None:
        try:
            closed = await self._lanes.ask_close(conversation_id, sender, token)
        except StoreUnavailable:
            return  # the question dies with the lease; nothing waits for it here
        if not closed:
            # Answered elsewhere at the moment it closed: the answer is on its way here.
            self._late += 1
            self._wake.set()
