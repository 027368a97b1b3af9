"""Following one phone's event stream: what it saw, in order, and what the test took of it.

``PhoneFeed`` reads the simulator's server-sent events for one phone
(``GET /sim/v1/phones/{number}/events``) into a ``PhoneLog``; ``Changed`` wakes whoever waits
for the next change; ``Cursor`` remembers which replies and tapbacks a test already took and
when the human last acted, so each ``expect_*`` looks only at what is new.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio

from imbot.testing.phone import Phone
from imbot.testing.timeline import TimelineItem, TimelineReaction

__all__ = ["Changed", "Cursor", "PhoneFeed", "PhoneLog"]


class Changed:
    """A broadcast 'something changed' signal: waiters wake on the next ``notify``."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        """Wake every current waiter."""
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        """Wait for the next ``notify``."""
        await self._event.wait()


@dataclass(slots=True)
class PhoneLog:
    """What one phone saw, in the order it saw it.

    Attributes:
        items: every item by id, in its latest state.
        entries: ``(kind, a, b)`` in order seen: ``("item", item_id, "")``,
            ``("typing", thread, "")`` or ``("reaction", reaction_id, item_id)``.
        replies: the ids of the bot's messages, in order.
        bot_tapbacks: the bot's tapbacks on the human's messages, in order.
        reactions: every tapback by id.
        before: items the phone showed before the feed started (a shared simulator).
    """

    items: dict[str, TimelineItem] = field(default_factory=dict)
    entries: list[tuple[str, str, str]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    bot_tapbacks: list[TimelineReaction] = field(default_factory=list)
    reactions: dict[str, TimelineReaction] = field(default_factory=dict)
    before: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Cursor:
    """How far a test has read a ``PhoneLog``.

    Attributes:
        log: the log read.
        handle: the bot's handle (its thread is the one typing counts in).
        replies: how many of ``log.replies`` the test took.
        tapbacks: how many of ``log.bot_tapbacks`` the test took.
        mark: the log's length when the human last acted.
    """

    log: PhoneLog
    handle: str
    replies: int = 0
    tapbacks: int = 0
    mark: int = 0

    def act(self) -> int:
        """The human acts now: typing is judged from here on. Returns the mark."""
        self.mark = len(self.log.entries)
        return self.mark

    def next_reply(self) -> TimelineItem | None:
        """The bot's first message the test has not taken yet."""
        if self.replies >= len(self.log.replies):
            return None
        return self.log.items[self.log.replies[self.replies]]

    def next_tapback(self) -> TimelineReaction | None:
        """The bot's first tapback the test has not taken yet."""
        if self.tapbacks >= len(self.log.bot_tapbacks):
            return None
        return self.log.bot_tapbacks[self.tapbacks]

    def take_all(self) -> list[TimelineItem]:
        """Take every reply and tapback seen so far; return the replies not taken before."""
        fresh = [self.log.items[i] for i in self.log.replies[self.replies :]]
        self.replies = len(self.log.replies)
        self.tapbacks = len(self.log.bot_tapbacks)
        return fresh

    def typed(self) -> bool:
        """Whether the bot showed the typing bubble since the human last acted."""
        return any(
            kind == "typing" and thread == self.handle
            for kind, thread, _ in self.log.entries[self.mark :]
        )

    def typed_between(self, first: str, second: str) -> bool:
        """Whether the bot showed the typing bubble after item ``first`` and before ``second``."""
        at = {item_id: n for n, (kind, item_id, _) in enumerate(self.log.entries) if kind == "item"}
        start, end = at.get(first), at.get(second)
        if start is None or end is None:
            return False
        return any(
            kind == "typing" and thread == self.handle
            for kind, thread, _ in self.log.entries[start + 1 : end]
        )

    def router_answer(self, since: int) -> TimelineItem | None:
        """The router number's first message after log position ``since``."""
        for kind, item_id, _ in self.log.entries[since:]:
            seen = self.log.items.get(item_id) if kind == "item" else None
            if seen is not None and seen.thread == "router" and seen.sender == "them":
                return seen
        return None


class PhoneFeed:
    """Follow one phone's event stream into a ``PhoneLog``.

    Args:
        http: a session whose base URL is the simulator's origin.
        number: the phone's number.
        handle: the bot's handle (its messages count as replies).
        stopping: whether the owner is shutting down (then the stream ending is expected).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        number: str,
        handle: str,
        *,
        stopping: Callable[[], bool],
    ) -> None:
        self._http = http
        self.phone = Phone(http, number)
        self.number = number
        self.handle = handle
        self._stopping = stopping
        self.log = PhoneLog()
        self.changed = Changed()
        self.ready = anyio.Event()
        self.error: str | None = None

    async def follow(self) -> None:
        """Read the stream until it ends; ``ready`` is set once the backlog is known."""
        url = f"{self.phone.path}/events"
        try:
            timeout = aiohttp.ClientTimeout(total=None)
            async with self._http.get(url, timeout=timeout) as response:
                if response.status != 200:
                    self.error = f"{response.status} {await response.text()}"
                    return
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        if self.apply(block.decode()) == "ready":
                            await self._seed()
                            self.ready.set()
        except (aiohttp.ClientError, AssertionError) as exc:
            self.error = repr(exc)
        finally:
            if self.error is None and not self._stopping():
                self.error = "ended"
            self.ready.set()
            self.changed.notify()

    async def timeline(self) -> dict[str, Any]:
        """The phone's whole timeline now (``GET /sim/v1/phones/{number}/timeline``)."""
        return await self.phone.timeline()

    async def _seed(self) -> None:
        """Note what the phone already showed before we listened (a shared simulator)."""
        data = await self.timeline()
        self.log.before.update(str(item["id"]) for item in data["items"])

    def apply(self, block: str) -> str:
        """Apply one server-sent event block; return its event name."""
        event, data = "", []
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if event == "ready" or not data:
            return event
        try:
            payload = json.loads("\n".join(data))
        except ValueError:
            self.error = f"unreadable {event or 'message'} event: {data!r:.200}"
            return event
        if event == "item":
            self._on_item(TimelineItem.from_json(payload), system=bool(payload.get("system")))
        elif event == "typing" and payload.get("typing"):
            self.log.entries.append(("typing", str(payload.get("thread")), ""))
        self.changed.notify()
        return event

    def _on_item(self, item: TimelineItem, *, system: bool = False) -> None:
        log = self.log
        if item.id in log.before:
            return
        # The stream sends every change of an item as its new full state, in order.
        old = log.items.get(item.id)
        log.items[item.id] = item
        if old is None:
            log.entries.append(("item", item.id, ""))
            # A `system` item is Inkbox's note in the agent's thread at connect, not a reply.
            if item.sender == "them" and item.thread == self.handle and not system:
                log.replies.append(item.id)
        for reaction in item.reactions:
            if reaction.id in log.reactions:
                continue
            log.reactions[reaction.id] = reaction
            log.entries.append(("reaction", reaction.id, item.id))
            if reaction.sender == "them" and item.sender == "me":
                log.bot_tapbacks.append(reaction)
