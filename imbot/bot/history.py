"""A conversation's recent messages, both sides, for a model's context: ``ctx.history()``.

History is read from the Inkbox API's message list, not kept by the bot: it survives a
restart, is the same on every process of a bot, and includes what was sent outside it (by
another bot, a script, or the dashboard). Up to a page (200 messages) costs one request.
``to_openai_messages`` turns it into the ``[{"role", "content"}]`` list that OpenAI-style
chat APIs, and most libraries built on them, take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from imbot.errors import InvalidRequest
from imbot.models import Direction

if TYPE_CHECKING:
    from imbot.client import InkboxClient
    from imbot.models import Message

__all__ = ["HistoryEntry", "read_history", "to_openai_messages"]

_PAGE = 200  # the largest page the message list serves


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message of a conversation, as a model sees it.

    Example:
        >>> for entry in await ctx.history(limit=10):
        ...     print(entry.role, entry.text)

    Attributes:
        role: ``"user"`` for the human's messages, ``"assistant"`` for the bot's side.
        text: the text (``""`` for media alone).
        media: the attachments' URLs.
        at: when the message was created.
        message_id: the API's id of the message.
    """

    role: Literal["user", "assistant"]
    text: str
    media: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    message_id: str = ""

    @classmethod
    def from_message(cls, message: Message) -> HistoryEntry:
        """The entry of an API message."""
        return cls(
            role="user" if message.direction == Direction.INBOUND else "assistant",
            text=message.text,
            media=[item.url for item in message.media or ()],
            at=message.created_at,
            message_id=message.id,
        )


async def read_history(
    client: InkboxClient, conversation_id: str, limit: int = 20
) -> list[HistoryEntry]:
    """The conversation's last ``limit`` messages, oldest first.

    Messages that failed to reach the human are left out (they never saw them), so fewer
    than ``limit`` entries may come back.

    Args:
        client: the API client.
        conversation_id: the conversation.
        limit: how many of the latest messages to read; one request up to 200.

    Raises:
        InvalidRequest: ``limit`` is below 1.
    """
    if limit < 1:
        raise InvalidRequest(f"history limit must be at least 1, not {limit}")
    walk = client.iter_messages(conversation_id=conversation_id, page_size=min(limit, _PAGE))
    newest_first: list[Message] = []
    try:
        async for message in walk:
            newest_first.append(message)
            if len(newest_first) >= limit:
                break  # before the walk asks for another page
    finally:
        close = getattr(walk, "aclose", None)
        if close is not None:
            await close()
    return [HistoryEntry.from_message(m) for m in reversed(newest_first) if not m.failed]


def to_openai_messages(entries: list[HistoryEntry], *, merge: bool = True) -> list[dict[str, str]]:
    """History as OpenAI-style chat messages: ``[{"role": ..., "content": ...}]``.

    An attachment is named on a line of its own (``[attachment: URL]``); an entry with
    neither text nor media is left out.

    Example:
        >>> to_openai_messages(await ctx.history())
        [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'Hello!'}]

    Args:
        entries: the history, oldest first.
        merge: join consecutive entries of one role (a burst of texts, a reply sent as
            several bubbles) into one message, as chat APIs that want roles to alternate
            need.
    """
    messages: list[dict[str, str]] = []
    for entry in entries:
        lines = [entry.text] if entry.text else []
        lines.extend(f"[attachment: {url}]" for url in entry.media)
        if not lines:
            continue
        content = "\n".join(lines)
        if merge and messages and messages[-1]["role"] == entry.role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": entry.role, "content": content})
    return messages
