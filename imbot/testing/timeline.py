"""What a human's phone shows: the simulator's ``/sim/v1`` timeline JSON as frozen records.

``TimelineItem`` is a bubble (the human's, the bot's or the router's), ``TimelineMedia`` an
attachment on it and ``TimelineReaction`` a tapback. ``imbot.testing.feed`` fills them in from
the phone's event stream; ``Conversation.expect_*`` returns them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TimelineItem", "TimelineMedia", "TimelineReaction"]

_EMOJI = {
    "love": "❤️",
    "like": "👍",
    "dislike": "👎",
    "laugh": "😂",
    "emphasize": "‼️",
    "question": "❓",
    "eyes": "👀",
}


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
