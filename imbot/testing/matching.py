"""What a reply must look like: the matching rules behind ``Conversation.expect_reply``.

``text`` is the exact text, ``regex`` is searched (``re.search``), ``contains`` is a
substring, and ``media`` is ``True`` (an attachment), ``False`` (none) or a content type
prefix one attachment must have. Every rule given must hold.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imbot.testing.timeline import TimelineItem

__all__ = ["describe_reply", "reply_mismatch"]


def describe_reply(
    *,
    text: str | None,
    regex: str | re.Pattern[str] | None,
    contains: str | None,
    media: bool | str | None,
) -> str:
    """What an ``expect_reply`` asks for, in words: `` with text 'hi', with an attachment``.

    Returns:
        The description with a leading space, or ``""`` when nothing is asked.
    """
    parts = []
    if text is not None:
        parts.append(f"with text {text!r}")
    if regex is not None:
        parts.append(f"matching /{regex if isinstance(regex, str) else regex.pattern}/")
    if contains is not None:
        parts.append(f"containing {contains!r}")
    if media is True:
        parts.append("with an attachment")
    elif media is False:
        parts.append("without attachment")
    elif media is not None:
        parts.append(f"with a {media} attachment")
    return (" " + ", ".join(parts)) if parts else ""


def reply_mismatch(
    reply: TimelineItem,
    *,
    text: str | None,
    regex: str | re.Pattern[str] | None,
    contains: str | None,
    media: bool | str | None,
) -> str | None:
    """Why ``reply`` does not match what ``expect_reply`` asks for.

    Returns:
        The reason (``the bot said 'hi'``), or ``None`` when the reply matches.
    """
    said = reply.text or ""
    got = f"the bot said {reply.text!r}" if reply.text is not None else "the bot sent no text"
    if text is not None and said != text:
        return got
    if regex is not None and not re.search(regex, said):
        return got
    if contains is not None and contains not in said:
        return got
    kinds = [m.content_type or "" for m in reply.media]
    if media is True and not reply.media:
        return f"{got} without attachment"
    if media is False and reply.media:
        return f"{got} with an attachment ({', '.join(kinds)})"
    if isinstance(media, str) and not any(k.startswith(media) for k in kinds):
        return f"{got} with attachments {kinds or 'none'}"
    return None
