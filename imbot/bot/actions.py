"""The context's helpers that act on a conversation without sending text.

``ctx.react``, ``ctx.typing``, ``ctx.mark_read`` and ``ctx.upload``: one layer of
``Context`` (``EventView`` → ``Actions`` → ``Context``), so that ``context.py`` keeps the
sends, the state and the questions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imbot.bot.event_view import EventT_co, EventView
from imbot.bot.typing import Typing

if TYPE_CHECKING:
    import os

    from imbot.bot.services import Services
    from imbot.client import InkboxClient
    from imbot.models import MarkReadResult, MediaUpload, Message, Reaction, TapbackKind

__all__ = ["Actions"]


class Actions(EventView[EventT_co]):
    """Tapbacks, the typing bubble, read receipts and uploads, for the event's conversation.

    The layer of ``Context`` between reading the event and sending messages; ``Context``
    sets the attributes declared here.
    """

    __slots__ = ()

    _services: Services
    _typing: list[Typing]

    @property
    def client(self) -> InkboxClient:
        """The bot's API client, for calls the helpers do not cover."""
        return self._services.client

    async def react(
        self, kind: TapbackKind | str, message: Message | str | None = None
    ) -> Reaction:
        """Send a tapback, on the message that triggered the handler by default.

        Example:
            >>> await ctx.react("love")
            >>> await ctx.react(TapbackKind.LAUGH, message=earlier)

        Args:
            kind: ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``, ``question``
                or ``eyes``.
            message: the message (or its id) to react to.
        """
        if message is None:
            target = self.trigger_message_id()
        else:
            target = message if isinstance(message, str) else message.id
        self._mark_sent()
        return await self.client.send_reaction(target, kind)

    def typing(self, interval: float | None = None) -> Typing:
        """Show the typing bubble while a block runs.

        Example:
            >>> async with ctx.typing():
            ...     answer = await llm.complete(ctx.text)
            ...     await ctx.reply(answer)

        Args:
            interval: seconds between refreshes; the bot's ``typing_interval`` (40 s) by
                default.
        """
        return Typing(
            self._show_typing,
            self._services.typing_interval if interval is None else interval,
            active=self._typing,
            conversation_id=self.conversation_id,
            event_id=self._event.id,
        )

    async def mark_read(self) -> MarkReadResult:
        """Mark the conversation read: the human sees a read receipt.

        Example:
            >>> await ctx.mark_read()
        """
        return await self.client.mark_read(self.require_conversation("mark_read"))

    async def upload(
        self,
        data: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> MediaUpload:
        """Upload a file (up to 10 MiB) to send later, possibly several times.

        Example:
            >>> menu = await ctx.upload("menu.pdf")
            >>> await ctx.reply("Here's the menu", media=menu)

        Args:
            data: the content, or a path to it.
            filename: the name to upload under.
            content_type: the MIME type; guessed from the name by default.
        """
        self._mark_sent()
        return await self.client.upload_media(data, filename=filename, content_type=content_type)

    async def _show_typing(self) -> None:
        await self.client.send_typing(self.require_conversation("typing"))

    def _mark_sent(self) -> None:
        # A turn whose handler has started to answer is no longer interrupted by new
        # messages (imbot.bot.turns): every helper that the human could see calls this first.
        if self.turn is not None:
            self.turn.mark_sent()
