"""The handler context: ``ctx``, the one parameter every handler takes.

``Context[EventT_co]`` is generic over the event, so ``ctx.event`` is typed for each
decorator (``Context[MessageReceived]`` under ``on_message``). It is a facade of small
awaitable helpers that fill in the ids: ``reply``, ``react``, ``typing``, ``mark_read``,
``send``, ``upload``, ``ask``; plus ``state`` (the conversation's saved dict) and ``log``.

Every message a handler sends is sent exactly once, even when its event is handled again:
see ``imbot.bot.sending``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.abc

from imbot.bot.event_view import EventT_co, EventView
from imbot.bot.inbox import event_key
from imbot.bot.sending import MediaInput, idempotency_key, send_message
from imbot.bot.typing import Typing
from imbot.errors import AskTimeout, ImbotError, InvalidRequest, SkipHandler
from imbot.log import get_logger
from imbot.models import MediaUpload, Message, Reaction

if TYPE_CHECKING:
    import os
    import re

    from structlog.typing import FilteringBoundLogger

    from imbot.bot.bot import Bot
    from imbot.bot.services import Services
    from imbot.bot.state import ConversationState
    from imbot.client import InkboxClient
    from imbot.models import MarkReadResult, SendStyle, TapbackKind

__all__ = ["AskTimeout", "Context"]

_log = get_logger("imbot")


class Context(EventView[EventT_co]):
    """What a handler gets: the event, helpers that act on its conversation, state and a log.

    Example:
        >>> @bot.on_message()
        ... async def echo(ctx: Context[MessageReceived]) -> None:
        ...     async with ctx.typing():
        ...         await ctx.reply(ctx.text)

    Attributes:
        args: a command's parsed arguments by parameter name (empty otherwise).
        command: the command name that matched, or ``None``.
        match: the ``re.Match`` of a ``Regex`` filter, or ``None``.
        new_connection: ``True`` for the human's first message after connecting, when the
            bot has an ``on_connect`` handler (the bot finds it out; ``False`` otherwise).
    """

    __slots__ = (
        "_handler_name",
        "_key",
        "_log",
        "_sends",
        "_services",
        "_state",
        "_typing",
        "args",
        "command",
        "match",
        "new_connection",
    )

    def __init__(self, services: Services, event: EventT_co, *, key: str | None = None) -> None:
        """Create the context of one event (the bot does this; handlers never need to).

        Args:
            services: what the running bot lends to handlers.
            event: the event.
            key: the key the inbox keeps the event under; ``event_key(event)`` by default.
                Its sends' idempotency keys are made from it.
        """
        super().__init__(event)
        self._services = services
        self._key = key
        self._log: FilteringBoundLogger | None = None
        self._sends = 0
        self._state: ConversationState | None = None
        self._typing: list[Typing] = []
        self._handler_name: str | None = None
        self.args: dict[str, Any] = {}
        self.command: str | None = None
        self.match: re.Match[str] | None = None
        self.new_connection = False

    def __repr__(self) -> str:
        event = self._event
        return f"<Context {event.event_type} {event.id} conversation={self.conversation_id!r}>"

    @property
    def bot(self) -> Bot:
        """The bot handling the event (its ``state`` holds lifespan resources)."""
        return self._services.bot

    @property
    def client(self) -> InkboxClient:
        """The bot's API client, for calls the helpers do not cover."""
        return self._services.client

    @property
    def handler_name(self) -> str | None:
        """The qualified name of the handler running (``None`` while routing)."""
        return self._handler_name

    @handler_name.setter
    def handler_name(self, name: str | None) -> None:
        self._handler_name = name
        self._log = None  # ctx.log names the handler: rebind it on first use

    @property
    def state(self) -> ConversationState:
        """The conversation's saved state: a dict of JSON values, saved after the handler.

        It is loaded the first time a handler (or a filter, a middleware) reads it, so a
        handler that never does pays nothing for it.

        Example:
            >>> ctx.state["count"] = ctx.state.get("count", 0) + 1

        Raises:
            ImbotError: read while the bot is not running.
        """
        state = self._state
        if state is None:
            state = self._state = self._services.state_nowait(self.conversation_id)
        return state

    @property
    def log(self) -> FilteringBoundLogger:
        """A structlog logger bound to the event id, conversation id and handler name.

        Example:
            >>> ctx.log.info("order looked up", order=order_id)
        """
        if self._log is None:
            self._log = _log.bind(
                event_id=self._event.id,
                conversation_id=self.conversation_id,
                handler=self.handler_name,
            )
        return self._log

    # ------------------------------------------------------------------ helpers

    def skip(self) -> NoReturn:
        """Pass the event on to the next matching handler (raises ``SkipHandler``).

        Example:
            >>> if not ctx.text.endswith("?"):
            ...     ctx.skip()
        """
        raise SkipHandler

    async def reply(
        self,
        text: str | None = None,
        *,
        media: MediaInput | None = None,
        effect: SendStyle | str | None = None,
        reply_to: Message | str | None = None,
        thread: bool = False,
    ) -> Message:
        """Send a message into this conversation.

        Example:
            >>> await ctx.reply("Booked for Friday", effect="confetti")
            >>> await ctx.reply(media="receipt.pdf")               # uploaded first
            >>> await ctx.reply("This one?", thread=True)          # a native reply
            >>> await ctx.reply("About that:", reply_to=earlier)   # to another message

        A native (inline) reply is sent with ``plain_reply_fallback``: where it cannot be
        shown as a reply, it arrives as a plain message rather than not at all.

        Args:
            text: the text; needed unless ``media`` is given.
            media: a URL, a path or bytes to upload, or a ``MediaUpload``.
            effect: a bubble or screen effect (``SendStyle``).
            reply_to: reply natively to this message (or message id) of the conversation.
            thread: reply natively to the message that triggered the handler (the one
                tapped back, for a tapback).

        Returns:
            The sent message (status ``queued`` at first).

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
        return await self._send(
            text,
            conversation_id=self.require_conversation("reply"),
            media=media,
            effect=effect,
            reply_to=target,
        )

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
        return await self.client.upload_media(data, filename=filename, content_type=content_type)

    async def ask(
        self,
        prompt: str | None = None,
        *,
        timeout: float = 300.0,
        media: MediaInput | None = None,
    ) -> Message:
        """Send a prompt and wait for the same person's next message in this conversation.

        The answer goes to this handler only: no other handler sees it. ``ctx.state`` is
        saved before waiting. Other conversations keep flowing meanwhile.

        Example:
            >>> name = await ctx.ask("What's your name?")
            >>> when = await ctx.ask(f"Thanks {name.text}! Which day?", timeout=120)

        Args:
            prompt: the question; nothing is sent when omitted.
            timeout: seconds to wait for the answer.
            media: an attachment for the prompt.

        Returns:
            The answer message.

        Raises:
            AskTimeout: no answer within ``timeout`` seconds.
        """
        conversation_id = self.require_conversation("ask")
        sender = self.sender
        if not sender:
            raise ImbotError("ctx.ask needs an event from a human (a message or a tapback)")
        if self._state is not None:
            await self._state.save()
        asks = self._services.asks
        waiter = asks.open(conversation_id, sender)
        try:
            if prompt is not None or media is not None:
                await self._send(prompt, conversation_id=conversation_id, media=media)
            with anyio.move_on_after(timeout):
                await waiter.answered.wait()
        finally:
            asks.close(conversation_id, sender, waiter)
        if waiter.message is None:
            raise AskTimeout(timeout, conversation_id)
        return waiter.message

    # ------------------------------------------------------------------ internals

    async def _send(
        self,
        text: str | None,
        *,
        conversation_id: str | None = None,
        to: str | None = None,
        media: MediaInput | None = None,
        effect: SendStyle | str | None = None,
        reply_to: str | None = None,
    ) -> Message:
        self._sends += 1
        message = await send_message(
            self.client,
            text,
            conversation_id=conversation_id,
            to=to,
            media=media,
            effect=effect,
            reply_to=reply_to,
            idempotency_key=idempotency_key(self._key or event_key(self._event), self._sends),
        )
        if self._typing:
            self._typing[-1].rearm()
        return message

    async def _show_typing(self) -> None:
        await self.client.send_typing(self.require_conversation("typing"))

    async def load_state(self) -> ConversationState:
        """Load the conversation's state now, if it is not loaded yet, and return it.

        ``ctx.state`` loads on first use; the bot calls this before routing when the state
        store can only load by awaiting (a filter may route on state).
        """
        state = self._state
        if state is None:
            state = self._state = await self._services.load_state(self.conversation_id)
        return state

    async def save_state(self) -> None:
        """Save the conversation's state now if it changed (the bot does this after handling)."""
        state = self._state
        if state is not None and state.dirty:
            await state.save()
