"""Sending messages from a handler: ``ctx.reply``, ``ctx.send`` and ``ctx.reply_stream``.

One layer of ``Context`` (``EventView`` → ``Actions`` → ``Replies`` → ``Context``). Every
send is numbered within the handling and keyed by that number (``imbot.bot.sending``), so a
re-run of the handler sends nothing twice; a reply split into bubbles (``bubbles.py``) is
one send whose bubbles are its parts, paced by ``pacing.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imbot.bot.actions import Actions
from imbot.bot.bubbles import BubbleSplitter, split_bubbles
from imbot.bot.event_view import EventT_co
from imbot.bot.inbox import event_key
from imbot.bot.pacing import Pacer, send_bubbles, stream_bubbles
from imbot.bot.sending import MediaInput, idempotency_key, send_message
from imbot.errors import IdempotencyKeyReused, InvalidRequest
from imbot.log import get_logger
from imbot.models import Message

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from imbot.models import SendStyle

__all__ = ["Replies"]

_log = get_logger("imbot")


class Replies(Actions[EventT_co]):
    """The context's sends: replies, messages to other conversations, streamed replies.

    ``Context`` sets the attributes declared here.
    """

    __slots__ = ("_key", "_sends")

    _key: str | None  # the key the inbox keeps the event under, when not event_key(event)
    _sends: int  # sends started so far by this handling: the next one's number, less one

    async def reply(
        self,
        text: str | None = None,
        *,
        media: MediaInput | None = None,
        effect: SendStyle | str | None = None,
        reply_to: Message | str | None = None,
        thread: bool = False,
        bubbles: bool | None = None,
    ) -> Message:
        """Send a message into this conversation, long text split into bubbles if asked.

        Example:
            >>> await ctx.reply("Booked for Friday", effect="confetti")
            >>> await ctx.reply(media="receipt.pdf")               # uploaded first
            >>> await ctx.reply("This one?", thread=True)          # a native reply
            >>> await ctx.reply("About that:", reply_to=earlier)   # to another message
            >>> await ctx.reply(long_answer, bubbles=True)         # paragraphs, sentences

        A native (inline) reply is sent with ``plain_reply_fallback``: where it cannot be
        shown as a reply, it arrives as a plain message rather than not at all.

        Split into bubbles (see ``imbot.bot.bubbles``), the text goes out in order, with
        the typing bubble and a pause (the bot's ``Pacing``) between bubbles; the first
        bubble is the native reply, the last carries ``media`` and ``effect``. A re-run
        of the handler sends none of them twice.

        Args:
            text: the text; needed unless ``media`` is given.
            media: a URL, a path or bytes to upload, or a ``MediaUpload``.
            effect: a bubble or screen effect (``SendStyle``).
            reply_to: reply natively to this message (or message id) of the conversation.
            thread: reply natively to the message that triggered the handler (the one
                tapped back, for a tapback).
            bubbles: split the text into bubbles; by default (``None``) as ``Bot(bubbles=)``
                says: in ``on_turn`` handlers, not in ``on_message`` ones.

        Returns:
            The sent message (status ``queued`` at first); the last one, for bubbles.

        Raises:
            InvalidRequest: both ``reply_to`` and ``thread=True`` were given.
            InkboxError: the API refused (e.g. ``ConversationInactive``).
        """
        if thread and reply_to is not None:
            raise InvalidRequest("give reply_to=... or thread=True, not both")
        if thread:
            target: str | None = self.trigger_message_id()
        else:
            target = reply_to.id if isinstance(reply_to, Message) else reply_to
        conversation_id = self.require_conversation("reply")
        settings = self._services.bubbles
        split = settings.on if bubbles is None else bubbles
        if split is None:
            split = self.turn is not None
        parts = split_bubbles(text, settings.limit) if split and text else []
        if len(parts) < 2:
            return await self._send(
                text, conversation_id=conversation_id, media=media, effect=effect, reply_to=target
            )
        last = len(parts)

        async def send(part_text: str, part: int) -> Message:
            return await self._send(
                part_text,
                conversation_id=conversation_id,
                media=media if part == last else None,
                effect=effect if part == last else None,
                reply_to=target if part == 1 else None,
                part=part,
            )

        return (await send_bubbles(parts, send, self._pacer()))[-1]

    async def reply_stream(self, chunks: AsyncIterable[str]) -> list[Message]:
        """Send streamed text (a model's answer as it comes) as bubbles, each once complete.

        The typing bubble stays up while the stream runs. A bubble is sent as soon as a
        paragraph (or, past the bubble limit, a sentence) is complete and no code block is
        open; the rest goes at the end. If the stream raises, the typing bubble stops,
        what was sent stays sent, and the exception propagates.

        Example:
            >>> stream = llm.stream(ctx.text)          # an async iterator of str
            >>> sent = await ctx.reply_stream(stream)

        Args:
            chunks: the text, in pieces of any size.

        Returns:
            The messages sent, in order (none for a blank stream).
        """
        conversation_id = self.require_conversation("reply_stream")

        async def send(part_text: str, part: int) -> Message:
            return await self._send(part_text, conversation_id=conversation_id, part=part)

        splitter = BubbleSplitter(self._services.bubbles.limit)
        return await stream_bubbles(chunks, splitter, send, self._pacer(), self.typing())

    async def send(
        self,
        text: str | None = None,
        *,
        conversation_id: str | None = None,
        to: str | None = None,
        media: MediaInput | None = None,
        effect: SendStyle | str | None = None,
    ) -> Message:
        """Send a message to another conversation (or this one), still exactly once.

        Example:
            >>> await ctx.send(f"New order from {ctx.sender}", conversation_id=OPS_CONVO)

        Args:
            text: the text; needed unless ``media`` is given.
            conversation_id: where to send; this conversation when neither target is given.
            to: a connected human's E.164 number, instead of ``conversation_id``.
            media: a URL, a path or bytes to upload, or a ``MediaUpload``.
            effect: a bubble or screen effect (``SendStyle``).
        """
        if conversation_id is None and to is None:
            conversation_id = self.require_conversation("send")
        return await self._send(
            text, conversation_id=conversation_id, to=to, media=media, effect=effect
        )

    async def _send(
        self,
        text: str | None,
        *,
        conversation_id: str | None = None,
        to: str | None = None,
        media: MediaInput | None = None,
        effect: SendStyle | str | None = None,
        reply_to: str | None = None,
        part: int = 1,
    ) -> Message:
        self._mark_sent()
        if part == 1:
            self._sends += 1
        key = idempotency_key(self._key or event_key(self._event), self._sends, part)
        try:
            message = await send_message(
                self.client,
                text,
                conversation_id=conversation_id,
                to=to,
                media=media,
                effect=effect,
                reply_to=reply_to,
                idempotency_key=key,
            )
        except IdempotencyKeyReused:
            # An earlier run of this handling (a crash, a redelivery) sent this send already,
            # with another text or media: a model's answer, a fresh upload. Sent it stays.
            earlier = await self._services.sent_under(key)
            if earlier is None:
                raise
            _log.info(
                "an earlier run already made this send; keeping its message",
                idempotency_key=key,
                message_id=earlier.id,
            )
            message = earlier
        if self._typing:
            self._typing[-1].rearm()
        return message

    def _pacer(self) -> Pacer:
        return Pacer(self._services.pacing, self._show_typing)
