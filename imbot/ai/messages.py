"""The conversation as pydantic-ai messages: the history before the turn, and the turn itself.

The human's messages become ``ModelRequest``s and the bot's ``ModelResponse``s, in the
order they were sent; a run of messages from one side (a burst, or one answer split into
bubbles) is one message to the model. The turn being answered is the prompt, so it is left
out of the history.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import groupby
from typing import TYPE_CHECKING

from pydantic_ai import ImageUrl, ModelRequest, ModelResponse, TextPart, UserPromptPart

if TYPE_CHECKING:
    from pydantic_ai import ModelMessage, UserContent

    from imbot.bot.context import Context
    from imbot.bot.history import HistoryEntry
    from imbot.events import MessageReceived
    from imbot.models import Message

__all__ = ["history_messages", "turn_message_ids", "turn_prompt"]


def history_messages(
    entries: Sequence[HistoryEntry], *, exclude: Collection[str] = ()
) -> list[ModelMessage]:
    """Convert ``ctx.history()`` entries into pydantic-ai message history.

    Example:
        >>> history = history_messages(await ctx.history(limit=20))
        >>> result = await agent.run("and tomorrow?", message_history=history)

    Args:
        entries: the conversation's messages, oldest first.
        exclude: message ids to leave out (the turn being answered, sent as the prompt).

    Returns:
        A ``ModelRequest`` per run of the human's messages and a ``ModelResponse`` per run
        of the bot's; attachments appear as ``[attachment: URL]`` in the text.
    """
    kept = [
        (entry.role, text)
        for entry in entries
        if entry.message_id not in exclude and (text := _entry_text(entry))
    ]
    messages: list[ModelMessage] = []
    for role, run in groupby(kept, key=lambda pair: pair[0]):
        texts = [text for _, text in run]
        if role == "user":
            messages.append(ModelRequest(parts=[UserPromptPart(text) for text in texts]))
        else:
            messages.append(ModelResponse(parts=[TextPart("\n\n".join(texts))]))
    return messages


def turn_message_ids(ctx: Context[MessageReceived]) -> set[str]:
    """The ids of the messages the handler is answering: the turn's, or the event's."""
    return {message.id for message in _turn_messages(ctx)}


def turn_prompt(ctx: Context[MessageReceived], *, images: bool = True) -> str | list[UserContent]:
    """The user prompt for a turn: its text, its tapbacks, and its images as image URLs.

    Example:
        >>> result = await agent.run(turn_prompt(ctx))

    Args:
        ctx: the turn handler's context (or any message handler's).
        images: pass the turn's images to the model as ``ImageUrl`` parts; other
            attachments, and images when ``False``, appear as ``[attachment: URL]``.
    """
    lines = [ctx.text] if ctx.text else []
    pictures: list[UserContent] = []
    for message in _turn_messages(ctx):
        for item in message.media or ():
            if images and (item.content_type or "").startswith("image/"):
                pictures.append(ImageUrl(item.url, media_type=item.content_type))
            else:
                lines.append(f"[attachment: {item.url}]")
    turn = ctx.turn
    if turn is not None:
        lines.extend(
            f"[tapback: {reaction.custom_emoji or reaction.reaction}]"
            for reaction in turn.reactions
        )
    text = "\n".join(lines)
    if not pictures:
        return text or "(an empty message)"
    return [text, *pictures] if text else pictures


def _turn_messages(ctx: Context[MessageReceived]) -> Sequence[Message]:
    turn = ctx.turn
    if turn is not None:
        return turn.messages
    message = ctx.message
    return [message] if message is not None else []


def _entry_text(entry: HistoryEntry) -> str:
    lines = [entry.text] if entry.text else []
    lines.extend(f"[attachment: {url}]" for url in entry.media)
    return "\n".join(lines)
