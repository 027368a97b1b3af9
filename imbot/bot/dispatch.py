"""The dispatcher: one lane per conversation, run by a bounded pool on an anyio task group.

Events of one conversation run one at a time, in the order they were submitted; events of
different conversations run concurrently, at most ``max_concurrency`` handlers at once.

```
submit(key, event) ─► lanes[key] ─(new lane)─► ready ─► worker: handle(event)
                       (a deque)                 ▲         │ lane has more: back of ready
                                                 └─────────┤
                                                           └ lane empty: delete lanes[key]
```

A lane is a deque of events; it exists only while its conversation has an event queued or
running, so a conversation that went quiet costs nothing. Lanes wait their turn in ``ready``;
at most ``max_concurrency`` workers (tasks of the dispatcher's task group, started as needed
and kept for reuse) take one lane at a time, handle its next event, then put the lane at the
back of ``ready`` if it has more. Holding a lane while its handler runs is what keeps each
conversation in order; round-robin over ``ready`` keeps a busy conversation from starving
the others. The pool is also the concurrency bound: a limiter around handler execution only,
so ``submit`` never waits.

Why a pool rather than a task per lane: starting a task costs more than everything else on
the path of one event; a sleeping worker is woken for a fraction of that.

``drain(timeout)`` stops intake, waits for queued and running events, and past the timeout
cancels what is left and records it in ``abandoned``.

The handler of a lane's event may look at the events queued behind it, take them from the
front, and wait for more (``LaneAccess``, which the dispatcher implements): a turn
(``imbot.bot.turns``) gathers a burst of messages that way, in the conversation's lane.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from imbot.errors import SetupError
from imbot.events import AnyEvent
from imbot.log import get_logger

__all__ = ["Dispatcher", "LaneAccess", "lane_key"]

_log = get_logger("imbot.bot.dispatch")

_NEW, _RUNNING, _CLOSING, _CLOSED = range(4)
_WORKER_TASK_NAME = "imbot.dispatch.worker"


def lane_key(event: AnyEvent) -> str:
    """The lane an event is queued on: its conversation, or itself when it names none."""
    return event.conversation_id or event.id


class LaneAccess(Protocol):
    """A lane as the handler of one of its events sees it: look behind, take, wait.

    Only the code handling an event of the lane calls these, while it does: it holds the
    lane, so nothing else takes from it meanwhile. Taking an event does not complete it in
    the inbox; the taker does that once done with it, so a crash leaves it pending.
    Events accepted meanwhile join the back of the lane, as always.
    """

    async def peek(self, key: str, limit: int) -> list[AnyEvent]:
        """Up to ``limit`` events queued on ``key``'s lane, front first (not the running one)."""
        ...

    async def take(self, key: str) -> AnyEvent | None:
        """Remove the event at the front of ``key``'s lane and return it; ``None`` if empty."""
        ...

    async def wait(self, key: str, timeout: float | None, *, beyond: int = 0) -> bool:
        """Wait until more than ``beyond`` events are queued on ``key``'s lane.

        Returns:
            ``True`` once there are (at once when there already are); ``False`` when
            ``timeout`` seconds passed first (``None``: no limit).
        """
        ...


class _Lane(deque[AnyEvent]):
    """One conversation's queued events; the key rides along for removal."""

    __slots__ = ("key", "waiter")

    def __init__(self, key: str, event: AnyEvent) -> None:
        super().__init__((event,))
        self.key = key
        self.waiter: anyio.Event | None = None  # set by a LaneAccess.wait in progress


class Dispatcher:
    """Runs a handler over events, in order per key, concurrently across keys.

    Example:
        >>> dispatcher = Dispatcher(handle, max_concurrency=256)
        >>> async with anyio.create_task_group() as tg:
        ...     await tg.start(dispatcher.run)
        ...     dispatcher.submit(event.conversation_id, event)
        ...     await dispatcher.drain(timeout=10)

    ``handle`` should catch its own errors; one that escapes is logged and the lane goes on
    with its next event.

    Attributes:
        abandoned: after a ``drain`` that timed out (or a cancelled ``run``), the events that
            were cancelled mid-handler or never started, in no particular order.
    """

    __slots__ = (
        "_done",
        "_handle",
        "_idle",
        "_in_flight",
        "_lanes",
        "_max_concurrency",
        "_ready",
        "_sleepers",
        "_state",
        "_stop",
        "_tg",
        "_workers",
        "abandoned",
    )

    def __init__(
        self, handle: Callable[[AnyEvent], Awaitable[None]], *, max_concurrency: int = 256
    ) -> None:
        """Create a dispatcher; it accepts events once ``run`` has started.

        Args:
            handle: awaited once per event.
            max_concurrency: most handlers running at the same time, across all lanes.
                Handlers mostly wait on the network, so this bounds waiting, not CPU: too
                low and replies queue behind acknowledged webhooks.

        Raises:
            SetupError: ``max_concurrency`` is below 1.
        """
        if max_concurrency < 1:
            raise SetupError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._handle = handle
        self._max_concurrency = max_concurrency
        self._lanes: dict[str, _Lane] = {}
        self._ready: deque[_Lane] = deque()
        self._sleepers: list[anyio.Event] = []
        self._workers = 0
        self._state = _NEW
        self._tg: anyio.abc.TaskGroup | None = None
        self._stop: anyio.Event | None = None
        self._done: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._in_flight = 0
        self.abandoned: list[AnyEvent] = []

    @property
    def lane_count(self) -> int:
        """Lanes alive now: conversations with an event queued or running."""
        return len(self._lanes)

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Events waiting in lanes, not yet started (walks the lanes: for diagnostics)."""
        return sum(len(lane) for lane in self._lanes.values())

    @property
    def max_concurrency(self) -> int:
        """Most handlers allowed to run at once."""
        return self._max_concurrency

    @property
    def accepting(self) -> bool:
        """Whether ``submit`` accepts events (``run`` started, no ``drain`` yet)."""
        return self._state == _RUNNING

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the workers' task group until ``drain`` finishes or the caller cancels.

        Start it with ``await tg.start(dispatcher.run)``: ``submit`` works once that returns.

        Raises:
            SetupError: the dispatcher already ran.
        """
        if self._state != _NEW:
            raise SetupError("a Dispatcher runs once; create a new one to run again")
        self._stop = anyio.Event()
        self._done = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._state = _RUNNING
                task_status.started()
                await self._stop.wait()
                # Every lane is done (or drain gave up): only sleeping workers are left.
                tg.cancel_scope.cancel()
        finally:
            # Events still in lanes never started; a cancelled running one is already recorded.
            for lane in self._lanes.values():
                self.abandoned.extend(lane)
            self._lanes = {}
            self._ready.clear()
            self._sleepers.clear()
            self._state = _CLOSED
            self._tg = None
            self._done.set()

    def submit(self, key: str, event: AnyEvent) -> None:
        """Queue an event on its key's lane; returns at once.

        Args:
            key: the ordering key, normally the conversation id.
            event: the event handed to ``handle``.

        Raises:
            SetupError: ``run`` has not started, or ``drain`` was called.
        """
        lane = self._lanes.get(key)
        if lane is not None and self._state == _RUNNING:
            lane.append(event)  # its worker, or its place in ready, will come to it
            if lane.waiter is not None:
                lane.waiter.set()
                lane.waiter = None
            return
        if self._state != _RUNNING or self._tg is None:
            raise SetupError(
                "the dispatcher is not accepting events: "
                + (
                    "start it with `await tg.start(dispatcher.run)` first"
                    if self._state == _NEW
                    else "it is draining or stopped"
                )
            )
        lane = _Lane(key, event)
        self._lanes[key] = lane
        self._ready.append(lane)
        if self._sleepers:
            self._sleepers.pop().set()
        elif self._workers < self._max_concurrency:
            self._workers += 1
            self._tg.start_soon(self._work, name=_WORKER_TASK_NAME)
        # Otherwise every worker is busy; the first to finish takes this lane from ready.

    async def _work(self) -> None:
        ready = self._ready
        handle = self._handle
        while True:
            while not ready:
                wake = anyio.Event()
                self._sleepers.append(wake)
                await wake.wait()
            lane = ready.popleft()
            event = lane.popleft()
            self._in_flight += 1
            try:
                await handle(event)
            except Exception:
                _log.exception(
                    "dispatch.handler_failed",
                    conversation_id=lane.key,
                    event_id=getattr(event, "id", None),
                )
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    self.abandoned.append(event)
                    raise
                # `handle` contains what handlers raise; whatever still gets here must not
                # end this worker (its lane would stall) nor the dispatcher.
                _log.exception(
                    "dispatch.handler_failed",
                    conversation_id=lane.key,
                    event_id=getattr(event, "id", None),
                )
            finally:
                self._in_flight -= 1
            if lane:
                ready.append(lane)
            else:
                self._retire(lane)
            if ready:
                # More work is queued: let the webhook and other tasks run between events.
                await anyio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ LaneAccess

    async def peek(self, key: str, limit: int) -> list[AnyEvent]:
        """Up to ``limit`` events queued on ``key``'s lane, front first (see ``LaneAccess``)."""
        lane = self._lanes.get(key)
        return list(islice(lane, limit)) if lane else []

    async def take(self, key: str) -> AnyEvent | None:
        """Remove and return the front event of ``key``'s lane (see ``LaneAccess``)."""
        lane = self._lanes.get(key)
        return lane.popleft() if lane else None

    async def wait(self, key: str, timeout: float | None, *, beyond: int = 0) -> bool:
        """Wait until more than ``beyond`` events are queued on ``key``'s lane."""
        lane = self._lanes.get(key)
        if lane is None:
            return False  # no handler holds it: nothing to wait on
        with anyio.move_on_after(timeout):
            while len(lane) <= beyond:
                if lane.waiter is None:
                    lane.waiter = anyio.Event()
                await lane.waiter.wait()
        return len(lane) > beyond

    def _retire(self, lane: _Lane) -> None:
        # No await since the lane was found empty, so a submit cannot slip in between.
        lanes = self._lanes
        if lanes.get(lane.key) is lane:
            del lanes[lane.key]
        if not lanes:
            # A dict never shrinks; a fresh one hands back the memory of a burst.
            self._lanes = {}
            if self._idle is not None:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Stop accepting events and wait for the queued and running ones; then ``run`` returns.

        Call it from outside the handlers (a handler waiting for its own drain would wait out
        the timeout).

        Args:
            timeout: seconds to wait before cancelling what is left.

        Returns:
            ``True`` when every event finished in time; ``False`` when some were cancelled
            (they are in ``abandoned``, and logged).
        """
        if self._state == _NEW:
            self._state = _CLOSED
            return True
        if self._state == _RUNNING:
            self._state = _CLOSING
        with anyio.move_on_after(timeout):
            while self._lanes:
                if self._idle is None or self._idle.is_set():
                    self._idle = anyio.Event()
                await self._idle.wait()
        finished = not self._lanes
        if self._stop is not None:
            self._stop.set()  # run() cancels its task group: sleeping workers, or late work
        if self._done is not None:
            await self._done.wait()
        # Also False when run() was cancelled from outside and left events behind.
        finished = finished and not self.abandoned
        if not finished:
            _log.warning(
                "dispatch.drain_timeout",
                timeout=timeout,
                abandoned=len(self.abandoned),
                event_ids=[getattr(e, "id", None) for e in self.abandoned[:20]],
            )
        return finished
