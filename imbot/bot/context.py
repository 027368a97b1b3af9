"""The handler context: ``ctx``, the one parameter every handler takes.

``Context[EventT_co]`` is generic over the event, so ``ctx.event`` is typed for each
decorator (``Context[MessageReceived]`` under ``on_message``). It is a facade of small
awaitable helpers that fill in the ids: ``reply``, ``reply_stream``, ``react``, ``typing``,
``mark_read``, ``send``, ``upload``, ``ask``, ``history``; plus ``state`` (the
conversation's saved dict) and ``log``.

It is built in layers, one module each: ``EventView`` (``event_view.py``: reading the
event) → ``Actions`` (``actions.py``: tapbacks, typing, read receipts, uploads) →
``Replies`` (``replies.py``: sends, bubbles, streamed replies) → ``Context`` (this module:
state, log, questions, history).

Every message a handler sends is sent exactly once, even when its event is handled again:
see ``imbot.bot.sending``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.abc

from imbot.bot.actions import Actions
from imbot.bot.event_view import EventT_co
from imbot.bot.inbox import event_key
from imbot.bot.replies import Replies
from imbot.errors import AskTimeout, ImbotError, SkipHandler
from imbot.log import get_logger

if TYPE_CHECKING:
    import re

    from structlog.typing import FilteringBoundLogger

    from imbot.bot.bot import Bot
    from imbot.bot.history import HistoryEntry
    from imbot.bot.sending import MediaInput
    from imbot.bot.services import Services
    from imbot.bot.state import ConversationState
    from imbot.bot.typing import Typing
    from imbot.models import Message

__all__ = ["AskTimeout", "Context"]

_log = get_logger("imbot")


class Context(Replies[EventT_co]):
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
        "_asks",
        "_handler_name",
        "_log",
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
        self._asks = 0  # questions asked so far: each one's answer is kept under its number
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

    async def history(self, limit: int = 20) -> list[HistoryEntry]:
        """The conversation's last ``limit`` messages, both sides, oldest first.

        Read from the Inkbox API (one request up to 200), so it works after a restart,
        on every process, and includes messages sent outside this bot.

        Example:
            >>> history = await ctx.history(limit=30)
            >>> messages = to_openai_messages(history)   # imbot.bot.history

        Args:
            limit: how many messages to read.
        """
        from imbot.bot.history import read_history  # loaded by the bots that read history

        return await read_history(self.client, self.require_conversation("history"), limit)

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
        # Saving commits the run: in a turn, nothing may interrupt it from here on.
        self._mark_sent()
        if self._state is not None:
            await self._state.save()
        services = self._services
        key = self._key or event_key(self._event)
        self._asks += 1
        record = f"imbot.ask:{key}:{self._asks}"
        kept = await services.kept_answer(key, record)
        if kept is not None:  # this handling runs again, and the human answered already
            if prompt is not None or media is not None:
                self._sends += 1  # its prompt went out then: later sends keep their keys
            return kept
        asks = services.asks
        waiter = asks.open(conversation_id, sender)
        try:
            await asks.registered(waiter)  # with several processes: before the prompt leaves
            if prompt is not None or media is not None:
                await self._send(prompt, conversation_id=conversation_id, media=media)
            with anyio.move_on_after(timeout):
                await waiter.answered.wait()
        finally:
            asks.close(conversation_id, sender, waiter)
        if waiter.message is None:
            raise AskTimeout(timeout, conversation_id)
        await services.keep_answer(key, record, waiter.message)
        return waiter.message

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


def _name_helpers_after_context() -> None:
    # Handlers call the layers' helpers as ctx.reply(...): name them Context.reply, so that
    # Python's "coroutine ... was never awaited" warning (which uses the function's
    # qualified name) says what the handler wrote.
    for layer in (Actions, Replies):
        for name, helper in vars(layer).items():
            if inspect.iscoroutinefunction(helper) and not name.startswith("_"):
                helper.__qualname__ = f"Context.{name}"


_name_helpers_after_context()
