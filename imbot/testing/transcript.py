"""The conversation so far as text: what a failed expectation shows.

One line per bubble, tapback and typing bubble, in the order the phone saw them:

```text
Conversation of +15555550100 with @testbot:
  me: hi [read]
  bot: (typing…)
  bot: echo: hi [delivered]
  bot: ❤️ love on "hi"
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imbot.testing.feed import PhoneLog
    from imbot.testing.timeline import TimelineItem

__all__ = ["render_transcript"]


def render_transcript(
    number: str, handle: str, log: PhoneLog, stream_error: str | None = None
) -> str:
    """Render what one phone saw.

    Args:
        number: the human's number.
        handle: the bot's handle (its thread is shown as ``bot``).
        log: what the phone saw.
        stream_error: why the phone's event stream stopped, if it did.

    Returns:
        The transcript, one line per entry, ``(nothing yet)`` when empty.
    """
    lines = [f"Conversation of {number} with @{handle}:"]
    for kind, first, second in log.entries:
        if kind == "item":
            lines.append("  " + _render_item(log.items[first], handle))
        elif kind == "typing":
            lines.append(f"  {_who('them', first, handle)}: (typing…)")
        else:
            reaction = log.reactions[first]
            target = log.items[second]
            # Only the human and agents tapback; the router never does.
            thread = handle if target.thread == "router" else target.thread
            who = _who(reaction.sender, thread, handle)
            text = _shorten(target.text or "an attachment", 40)
            lines.append(f'  {who}: {reaction.emoji} {reaction.kind} on "{text}"')
    if len(lines) == 1:
        lines.append("  (nothing yet)")
    if stream_error:
        lines.append(f"  (event stream: {stream_error})")
    return "\n".join(lines)


def _shorten(text: str | None, limit: int = 60) -> str:
    """One line of at most ``limit`` characters, cut with an ellipsis."""
    text = (text or "").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _who(sender: str, thread: str, handle: str) -> str:
    if sender == "me":
        return "me"
    if thread == "router":
        return "router"
    return "bot" if thread == handle else f"@{thread}"


def _render_item(item: TimelineItem, handle: str) -> str:
    parts = [item.text.replace("\n", "\n      ") if item.text else ""]
    parts.extend(f"[{m.content_type or 'media'} {m.url}]" for m in item.media)
    if item.send_style:
        parts.append(f"({item.send_style})")
    body = " ".join(p for p in parts if p) or "(empty)"
    status = "" if item.thread == "router" and item.sender == "them" else f" [{item.status}]"
    return f"{_who(item.sender, item.thread, handle)}: {body}{status}"
