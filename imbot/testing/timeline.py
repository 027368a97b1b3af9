"""What a human's phone shows, and the follower that keeps it up to date.

The records (``TimelineItem``, ``TimelineMedia``, ``TimelineReaction``) are the simulator's
``/sim/v1`` timeline JSON as frozen dataclasses. ``PhoneFeed`` follows one phone's
server-sent event stream (``GET /sim/v1/phones/{number}/events``) and writes everything it
sees, in order, into a ``PhoneLog``; ``Changed`` wakes whoever waits for the next change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import anyio

__all__ = [
    "Changed",
    "PhoneFeed",
    "PhoneLog",
    "TimelineItem",
    "TimelineMedia",
    "TimelineReaction",
]

_EMOJI = {
    "love": "❤️",
    "like": "👍",
    "dislike": "👎",
    "laugh": "😂",
    "emphasize": "‼️",
    "question": "❓",
    "eyes": "👀",
}


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class TimelineMedia:
    """An attachment on a timeline item.

    Example:
        >>> reply = await chat.expect_reply(media="image/")
        >>> reply.media[0].content_type
        'image/png'
    """

    url: str
    content_type: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class TimelineReaction:
    """A tapback on a timeline item, as the human's phone shows it.

    Example:
        >>> tapback = await chat.expect_tapback("love")
        >>> tapback.kind, tapback.sender
        ('love', 'them')

    Attributes:
        id: the reaction id.
        sender: ``"me"`` (the human) or ``"them"`` (the bot).
        kind: ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``, ``question``,
            ``eyes`` or ``custom``.
        custom_emoji: the emoji of a ``custom`` tapback.
        message_id: the item it is on.
    """

    id: str
    sender: Literal["me", "them"]
    kind: str
    custom_emoji: str | None
    message_id: str

    @property
    def emoji(self) -> str:
        """The tapback as an emoji (``❤️`` for ``love``)."""
        return self.custom_emoji or _EMOJI.get(self.kind, self.kind)


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One bubble on the human's phone: theirs (``"me"``), the bot's or the router's.

    Example:
        >>> reply = await chat.expect_reply(regex=r"^echo")
        >>> reply.text, reply.status
        ('echo: hi', 'delivered')

    Attributes:
        id: the message id (the API's id for messages in a conversation).
        thread: the bot's handle, or ``"router"`` for the router number's thread.
        conversation_id: the conversation, or ``None`` in the router thread.
        sender: ``"me"`` for the human, ``"them"`` for the bot or the router.
        text: the text, or ``None`` for media alone.
        media: the attachments.
        send_style: the bubble or screen effect, if any.
        status: ``sent``, ``delivered``, ``read`` (the human's, once the bot marked it
            read) or ``failed``.
        reactions: the live tapbacks on it.
        created_at: when it was created (ISO 8601).
    """

    id: str
    thread: str
    conversation_id: str | None
    sender: Literal["me", "them"]
    text: str | None
    media: tuple[TimelineMedia, ...] = ()
    send_style: str | None = None
    status: str = "delivered"
    reactions: tuple[TimelineReaction, ...] = ()
    created_at: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TimelineItem:
        """Build an item from the simulator's ``/sim/v1`` JSON.

        Example:
            >>> TimelineItem.from_json({"id": "m1", "thread": "router", "from": "them",
            ...                         "text": "Connected", "status": "delivered"}).text
            'Connected'
        """
        item_id = str(data["id"])
        media = tuple(
            TimelineMedia(str(m["url"]), m.get("content_type"), m.get("size"))
            for m in data.get("media") or ()
        )
        reactions = tuple(
            TimelineReaction(
                id=str(r["id"]),
                sender="me" if r.get("from") == "me" else "them",
                kind=str(r["reaction"]),
                custom_emoji=r.get("custom_emoji"),
                message_id=item_id,
            )
            for r in data.get("reactions") or ()
        )
        return cls(
            id=item_id,
            thread=str(data["thread"]),
            conversation_id=data.get("conversation_id"),
            sender="me" if data.get("from") == "me" else "them",
            text=data.get("text"),
            media=media,
            send_style=data.get("send_style"),
            status=str(data.get("status") or "delivered"),
            reactions=reactions,
            created_at=str(data.get("created_at") or ""),
        )


# ---------------------------------------------------------------------------- the follower


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
        self.number = number
        self.handle = handle
        self._stopping = stopping
        self.log = PhoneLog()
        self.changed = Changed()
        self.ready = anyio.Event()
        self.error: str | None = None

    async def follow(self) -> None:
        """Read the stream until it ends; ``ready`` is set once the backlog is known."""
        url = f"/sim/v1/phones/{quote(self.number)}/events"
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
        except aiohttp.ClientError as exc:
            self.error = repr(exc)
        finally:
            if self.error is None and not self._stopping():
                self.error = "ended"
            self.ready.set()
            self.changed.notify()

    async def timeline(self) -> dict[str, Any]:
        """The phone's whole timeline now (``GET /sim/v1/phones/{number}/timeline``)."""
        async with self._http.get(f"/sim/v1/phones/{quote(self.number)}/timeline") as response:
            data: dict[str, Any] = await response.json()
            return data

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
            self._on_item(TimelineItem.from_json(payload))
        elif event == "typing" and payload.get("typing"):
            self.log.entries.append(("typing", str(payload.get("thread")), ""))
        self.changed.notify()
        return event

    def _on_item(self, item: TimelineItem) -> None:
        log = self.log
        if item.id in log.before:
            return
        # The stream sends every change of an item as its new full state, in order.
        old = log.items.get(item.id)
        log.items[item.id] = item
        if old is None:
            log.entries.append(("item", item.id, ""))
            if item.sender == "them" and item.thread == self.handle:
                log.replies.append(item.id)
        for reaction in item.reactions:
            if reaction.id in log.reactions:
                continue
            log.reactions[reaction.id] = reaction
            log.entries.append(("reaction", reaction.id, item.id))
            if reaction.sender == "them" and item.sender == "me":
                log.bot_tapbacks.append(reaction)
