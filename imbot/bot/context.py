"""The handler context: ``ctx``, the one parameter every handler takes.

``Context[EventT_co]`` is generic over the event, so ``ctx.event`` is typed for each
decorator (``Context[MessageReceived]`` under ``on_message``). It is a facade of small
awaitable helpers that fill in the ids: ``reply``, ``react``, ``typing``, ``mark_read``,
``send``, ``upload``, ``ask``; plus ``state`` (the conversation's saved dict) and ``log``.

Exactly-once sends: every message a handler sends carries an ``Idempotency-Key`` made by
``idempotency_key(event.id, n)``, ``n`` counting the sends of this handling (1, 2, …). A
redelivered or replayed event re-runs its handler, which sends under the same keys, and the
API replays the first result instead of sending again.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import anyio
import anyio.abc

from imbot.bot.state import ConversationState, load_state, load_state_nowait
from imbot.errors import AskTimeout, ImbotError, SkipHandler
from imbot.events import AnyEvent, MessageEvent, MessageReceived, ReactionReceived
from imbot.log import get_logger
from imbot.models import MediaUpload, Message, Reaction

if TYPE_CHECKING:
    import re

    from structlog.typing import FilteringBoundLogger

    from imbot.bot.bot import Bot
    from imbot.client.client import InkboxClient
    from imbot.models import MarkReadResult, SendStyle, TapbackKind

__all__ = [
    "AskRegistry",
    "AskTimeout",
    "Context",
    "MediaInput",
    "Typing",
    "idempotency_key",
    "media_url",
]

EventT_co = TypeVar("EventT_co", bound=AnyEvent, covariant=True)

MediaInput = str | bytes | os.PathLike[str] | MediaUpload
"""Media for a send: a URL (sent as is), a path or bytes (uploaded first), or an upload."""

_log = get_logger("imbot")


def idempotency_key(event_id: str, ordinal: int) -> str:
    """The ``Idempotency-Key`` of the ``ordinal``-th send made while handling an event.

    This is the only place the key is derived, so a re-run of the same event sends under
    the same keys.

    Example:
        >>> idempotency_key("evt_01J0R8Z4M6K2", 1)
        'imbot:evt_01J0R8Z4M6K2:1'
    """
    return f"imbot:{event_id}:{ordinal}"


async def media_url(client: InkboxClient, media: MediaInput) -> str:
    """The URL to send for a media argument, uploading paths and bytes first.

    Args:
        client: the client to upload with.
        media: an ``http(s)://`` URL (used as is), a path or bytes, or a ``MediaUpload``.
    """
    if isinstance(media, MediaUpload):
        return media.media_url
    if isinstance(media, str) and media.startswith(("https://", "http://")):
        return media
    return (await client.upload_media(media)).media_url


class _Waiter:
    __slots__ = ("answered", "message")

    def __init__(self) -> None:
        self.answered = anyio.Event()
        self.message: Message | None = None


class AskRegistry:
    """Open ``ctx.ask`` questions, by conversation and sender.

    ``Bot.feed`` offers each new inbound message here *before* queueing it: the asking
    handler holds its conversation's lane, so the answer must not wait in that lane.
    """

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], _Waiter] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def open(self, conversation_id: str, sender: str) -> _Waiter:
        """Start waiting for the next message of ``sender`` in ``conversation_id``.

        Raises:
            ImbotError: a question is already open there.
        """
        key = (conversation_id, sender)
        if key in self._open:
            raise ImbotError(
                f"ctx.ask is already waiting for {sender} in conversation {conversation_id}"
            )
        waiter = _Waiter()
        self._open[key] = waiter
        return waiter

    def close(self, conversation_id: str, sender: str, waiter: _Waiter) -> None:
        """Stop waiting (answered, timed out or cancelled)."""
        key = (conversation_id, sender)
        if self._open.get(key) is waiter:
            del self._open[key]

    def offer(self, event: MessageReceived) -> bool:
        """Hand an inbound message to the question waiting for it, if there is one.

        Returns:
            ``True`` when it answered a question (route it nowhere else).
        """
        message = event.data.message
        if message.direction == "outbound":
            return False
        sender = message.sender_number or message.remote_number or ""
        waiter = self._open.pop((message.conversation_id, sender), None)
        if waiter is None:
            return False
        waiter.message = message
        waiter.answered.set()
        return True


class Typing:
    """Keeps the typing bubble up while a block runs; made by ``ctx.typing()``.

    The bubble shows at once and is refreshed every ``interval`` seconds. A message clears
    it on the phone, so after each send inside the block it is shown again once the sends
    settle (after ``interval / 4`` seconds, at most 1 s); leaving the block stops the
    refreshes. Errors showing the bubble are logged, never raised: it is cosmetic.
    """

    __slots__ = ("_ctx", "_interval", "_previous", "_settle", "_tg", "_wake")

    def __init__(self, ctx: Context[Any], interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"typing interval must be positive, got {interval}")
        self._ctx = ctx
        self._interval = interval
        self._settle = min(1.0, interval / 4)
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()
        self._previous: Typing | None = None

    async def __aenter__(self) -> Typing:
        await self._show()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._keep_alive, name="imbot.typing")
        self._previous = self._ctx._typing
        self._ctx._typing = self
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ctx._typing = self._previous
        tg = self._tg
        self._tg = None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    def rearm(self) -> None:
        """Note that a message was sent: show the bubble again once sends settle."""
        self._wake.set()

    async def _keep_alive(self) -> None:
        while True:
            with anyio.move_on_after(self._interval):
                await self._wake.wait()
            while self._wake.is_set():
                self._wake = anyio.Event()
                with anyio.move_on_after(self._settle):
                    await self._wake.wait()
            await self._show()

    async def _show(self) -> None:
        ctx = self._ctx
        try:
            await ctx.client.send_typing(ctx._require_conversation("typing"))
        except Exception as exc:
            _log.warning(
                "typing indicator failed",
                error=repr(exc),
                conversation_id=ctx.conversation_id,
                event_id=ctx.event.id,
            )


class Context(Generic[EventT_co]):
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
        handler_name: the qualified name of the handler running.
    """

    __slots__ = (
        "_bot",
        "_event",
        "_log",
        "_sends",
        "_state",
        "_typing",
        "args",
        "command",
        "handler_name",
        "match",
    )

    def __init__(self, bot: Bot, event: EventT_co) -> None:
        """Create the context of one event (the bot does this; handlers never need to).

        Args:
            bot: the bot handling the event.
            event: the event.
        """
        self._bot = bot
        self._event = event
        self._log: FilteringBoundLogger | None = None
        self._sends = 0
        self._state: ConversationState | None = None
        self._typing: Typing | None = None
        self.args: dict[str, Any] = {}
        self.command: str | None = None
        self.match: re.Match[str] | None = None
        self.handler_name: str | None = None

    def __repr__(self) -> str:
        event = self._event
        return f"<Context {event.event_type} {event.id} conversation={self.conversation_id!r}>"

    # ------------------------------------------------------------------ what happened

    @property
    def event(self) -> EventT_co:
        """The webhook event being handled."""
        return self._event

    @property
    def bot(self) -> Bot:
        """The bot handling the event (its ``state`` holds lifespan resources)."""
        return self._bot

    @property
    def client(self) -> InkboxClient:
        """The bot's API client, for calls the helpers do not cover."""
        return self._bot.client

    @property
    def message(self) -> Message | None:
        """The message of a message event (received, sent, delivered, failed), else ``None``."""
        event = self._event
        if isinstance(event, MessageEvent):
            return event.data.message
        return None

    @property
    def reaction(self) -> Reaction | None:
        """The tapback of a ``reaction_received`` event, else ``None``."""
        event = self._event
        if isinstance(event, ReactionReceived):
            return event.data.reaction
        return None

    @property
    def text(self) -> str:
        """The message text, or ``""`` (tapbacks, media-only messages)."""
        event = self._event
        if isinstance(event, MessageEvent):
            return event.data.message.content or ""
        return ""

    @property
    def sender(self) -> str:
        """The human's number (E.164), or ``""`` when the event names none."""
        event = self._event
        if isinstance(event, MessageEvent):
            message = event.data.message
            return message.sender_number or message.remote_number or ""
        if isinstance(event, ReactionReceived):
            return event.data.reaction.remote_number
        return ""

    @property
    def conversation_id(self) -> str:
        """The conversation the event belongs to, or ``""`` when it names none."""
        return self._event.conversation_id or ""

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
            state = self._state = self._load_state_nowait()
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
        thread: bool = False,
    ) -> Message:
        """Send a message into this conversation.

        Example:
            >>> await ctx.reply("Booked for Friday", effect="confetti")
            >>> await ctx.reply(media="receipt.pdf")               # uploaded first
            >>> await ctx.reply("This one?", thread=True)          # a native reply

        Args:
            text: the text; needed unless ``media`` is given.
            media: a URL, a path or bytes to upload, or a ``MediaUpload``.
            effect: a bubble or screen effect (``SendStyle``).
            thread: reply natively to the message that triggered the handler.

        Returns:
            The sent message (status ``queued`` at first).

        Raises:
            InkboxError: the API refused (e.g. ``ConversationInactive``).
        """
        return await self._send(
            text,
            conversation_id=self._require_conversation("reply"),
            media=media,
            effect=effect,
            reply_to=self._trigger_message_id() if thread else None,
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
            conversation_id = self._require_conversation("send")
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
            target = self._trigger_message_id()
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
        return Typing(self, self._bot.typing_interval if interval is None else interval)

    async def mark_read(self) -> MarkReadResult:
        """Mark the conversation read: the human sees a read receipt.

        Example:
            >>> await ctx.mark_read()
        """
        return await self.client.mark_read(self._require_conversation("mark_read"))

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
        conversation_id = self._require_conversation("ask")
        sender = self.sender
        if not sender:
            raise ImbotError("ctx.ask needs an event from a human (a message or a tapback)")
        if self._state is not None:
            await self._state.save()
        asks = self._bot._asks
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
        media_urls = None if media is None else [await media_url(self.client, media)]
        self._sends += 1
        message = await self.client.send_message(
            conversation_id=conversation_id,
            to=to,
            text=text,
            media_urls=media_urls,
            send_style=effect,
            reply_to_message_id=reply_to,
            idempotency_key=idempotency_key(self._event.id, self._sends),
        )
        if self._typing is not None:
            self._typing.rearm()
        return message

    def _require_conversation(self, helper: str) -> str:
        conversation_id = self._event.conversation_id
        if not conversation_id:
            raise ImbotError(
                f"ctx.{helper}() needs a conversation, and this {self._event.event_type} "
                "event names none; use bot.send(..., conversation_id=...) instead"
            )
        return conversation_id

    def _trigger_message_id(self) -> str:
        event = self._event
        if isinstance(event, MessageEvent):
            return event.data.message.id
        if isinstance(event, ReactionReceived):
            return event.data.reaction.target_message_id
        raise ImbotError(f"a {event.event_type} event has no message to reply to or react on")

    def _load_state_nowait(self) -> ConversationState:
        """Load the conversation's state on first use, from a store that never awaits."""
        bot = self._bot
        conversation_id = self._event.conversation_id
        store = bot._instant_state_store
        if store is None:
            if bot._state_store is None:
                raise ImbotError(
                    "ctx.state is loaded when the bot routes an event; it is not available here"
                )
            # Only a store that must await to load lacks load_nowait, and the bot loads
            # those before the first handler is tried: this is a conversation-less event.
            return ConversationState("", store=None)
        if not conversation_id:
            return ConversationState("", store=None)
        return load_state_nowait(store, conversation_id)

    async def _load_state(self) -> None:
        """Load the state of a store without ``load_nowait``, before the first handler."""
        if self._state is None:
            conversation_id = self._event.conversation_id
            store = self._bot._state_store
            if conversation_id and store is not None:
                self._state = await load_state(store, conversation_id)
            else:
                self._state = ConversationState("", store=None)

    async def _finish(self) -> None:
        """Save the state if a handler changed it."""
        state = self._state
        if state is not None and state.dirty:
            await state.save()
