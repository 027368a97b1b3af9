"""Turns: a burst of messages from one conversation, answered by one handler run.

``@bot.on_turn(...)`` registers a turn handler. It is a candidate for ``imessage.received``
like an ``on_message`` handler (registration order, filters; a command still wins); when it
takes a message, the bot (``imbot.bot.turns``) waits for the conversation's following
messages and tapbacks until ``quiet`` seconds pass with nothing new, ``max_wait`` seconds
from the first, or ``max_messages`` / ``max_chars`` is reached, and then runs the handler
once with all of them in ``ctx.turn``. While it runs and has sent nothing, a new message
interrupts it (``interrupt=True``): the run is cancelled and the turn runs again with the
new message.

This module holds what routing needs: the options, the ``Turn`` a handler reads, the
handler record and the observer. No IO.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from imbot.errors import SetupError
from imbot.events import MessageReceived, ReactionReceived
from imbot.routing.filters import Filter, all_of
from imbot.routing.handlers import HandlerSpec, check_arity, check_async, name_of
from imbot.routing.observers import AnyHandler, Observer, _is_async, _returns_bool

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.models import Message, Reaction
    from imbot.types import FilterLike, MessageHandlerT

__all__ = ["Turn", "TurnHook", "TurnObserver", "TurnOptions", "TurnSpec"]

_EXAMPLE = "async def chat(ctx): ..."


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """When a turn stops collecting, and whether a new message interrupts its handler.

    Defaults as Inkbox's own agent plugin batches iMessage bursts.

    Attributes:
        quiet: seconds with nothing new that end the collection.
        max_wait: most seconds of collecting, from the first message (and again from a
            message that interrupted the run).
        max_messages: most messages in one turn.
        max_chars: most characters of the turn's joined text; a message that would pass it
            starts the next turn (a turn's first message is always taken).
        interrupt: cancel the handler and run the turn again when a message arrives
            before it sent anything.
    """

    quiet: float = 0.75
    max_wait: float = 2.0
    max_messages: int = 8
    max_chars: int = 4000
    interrupt: bool = True

    def __post_init__(self) -> None:
        for name in ("quiet", "max_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise SetupError(f"on_turn: {name} must be a number of seconds >= 0, got {value!r}")
        for name in ("max_messages", "max_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SetupError(f"on_turn: {name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.interrupt, bool):
            raise SetupError(f"on_turn: interrupt must be True or False, got {self.interrupt!r}")


class Turn:
    """What one turn handler run answers: ``ctx.turn``.

    Example:
        >>> @bot.on_turn()
        ... async def chat(ctx: Context[MessageReceived]) -> None:
        ...     ctx.turn.text            # 'hey\\nquick q\\nweather in Paris?'
        ...     len(ctx.turn.messages)   # 3; ctx.event is the last one's event

    Attributes:
        events: the human's messages and tapbacks of the turn, in order.
        restarts: how many times a new message interrupted the handler so far.
        sent: whether the handler started to send something (``mark_sent``); from then
            on new messages wait for the next turn.
    """

    __slots__ = ("events", "restarts", "sent")

    def __init__(self, first: MessageReceived) -> None:
        """Start a turn with its first message."""
        self.events: list[MessageReceived | ReactionReceived] = [first]
        self.restarts = 0
        self.sent = False

    def __repr__(self) -> str:
        return (
            f"<Turn messages={len(self.messages)} reactions={len(self.reactions)} "
            f"restarts={self.restarts} sent={self.sent}>"
        )

    @property
    def messages(self) -> list[Message]:
        """The human's messages, in order (media-only ones included)."""
        return [e.data.message for e in self.events if isinstance(e, MessageReceived)]

    @property
    def reactions(self) -> list[Reaction]:
        """The human's tapbacks that arrived during the turn, in order."""
        return [e.data.reaction for e in self.events if isinstance(e, ReactionReceived)]

    @property
    def text(self) -> str:
        """The messages' texts joined by newlines (``ctx.text`` in a turn handler)."""
        return "\n".join(m.content for m in self.messages if m.content)

    @property
    def last(self) -> MessageReceived:
        """The event of the turn's last message (``ctx.event`` in a turn handler)."""
        for event in reversed(self.events):
            if isinstance(event, MessageReceived):
                return event
        raise AssertionError("a turn always has a message")  # pragma: no cover

    def mark_sent(self) -> None:
        """Note that the handler started to send: new messages no longer interrupt it.

        The context's sending helpers (reply, send, react, upload) call it before they
        send; call it yourself before any other effect the human sees.
        """
        self.sent = True

    def fits(self, message: Message, options: TurnOptions) -> bool:
        """Whether one more message stays within ``max_messages`` and ``max_chars``."""
        messages = self.messages
        if len(messages) >= options.max_messages:
            return False
        content = message.content or ""
        if not content:
            return True
        text = self.text
        return len(text) + bool(text) + len(content) <= options.max_chars

    def add(self, event: MessageReceived | ReactionReceived) -> None:
        """Add a message or tapback to the turn (the bot does this while collecting)."""
        self.events.append(event)


_OPTION_NAMES = frozenset(("quiet", "max_wait", "max_messages", "max_chars", "interrupt"))

TurnHook = Callable[["Context[Any]", HandlerSpec], Awaitable[bool]]
"""Runs a turn handler routing chose for a context: ``(ctx, spec) -> handled``."""


@dataclass(slots=True, eq=False)
class TurnSpec(HandlerSpec):
    """A turn handler: a handler record with its ``TurnOptions``.

    Attributes:
        options: when the turn stops collecting, and whether it is interrupted.
    """

    options: TurnOptions = field(default_factory=TurnOptions)

    def serves(self, event_type: str) -> bool:
        """Turn handlers are candidates for incoming messages only."""
        return event_type == "imessage.received"


class TurnObserver(Observer):
    """``on_turn``: a burst of incoming messages, answered by one run of the handler.

    Example:
        >>> @bot.on_turn()
        ... async def chat(ctx: Context[MessageReceived]) -> None:
        ...     async with ctx.typing():
        ...         await ctx.reply(await llm.answer(ctx.turn.text))
        >>> @bot.on_turn(quiet=1.5, interrupt=False)
        ... async def patient(ctx): ...
    """

    __slots__ = ()

    @overload
    def __call__(self, handler: MessageHandlerT, /) -> MessageHandlerT: ...

    @overload
    def __call__(
        self,
        *filters: FilterLike,
        quiet: float = 0.75,
        max_wait: float = 2.0,
        max_messages: int = 8,
        max_chars: int = 4000,
        interrupt: bool = True,
    ) -> Callable[[MessageHandlerT], MessageHandlerT]: ...

    def __call__(self, *filters: Any, **options: Any) -> Any:
        """Register a turn handler, bare or with filters and options (see ``register``)."""
        if len(filters) == 1 and not options:
            only = filters[0]
            if _is_async(only) and not isinstance(only, Filter) and not _returns_bool(only):
                self.register(only)
                return only
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise SetupError(
                f"on_turn got unknown options {', '.join(unknown)}; it takes "
                f"{', '.join(sorted(_OPTION_NAMES))}"
            )
        checked = TurnOptions(**options)
        return self._registrations.deferred(
            "on_turn(...)", lambda func: self._add(_turn_spec(func, filters, checked))
        )

    def register(
        self,
        handler: AnyHandler,
        *filters: FilterLike,
        quiet: float = 0.75,
        max_wait: float = 2.0,
        max_messages: int = 8,
        max_chars: int = 4000,
        interrupt: bool = True,
    ) -> None:
        """Register a turn handler.

        Args:
            handler: ``async def handler(ctx)``; ``ctx.turn`` holds the turn.
            filters: filters the turn's first message must pass (and each message joining).
            quiet: seconds with nothing new that end the collection.
            max_wait: most seconds of collecting, from the first message.
            max_messages: most messages in one turn.
            max_chars: most characters of the turn's joined text.
            interrupt: a message arriving before the handler sent anything cancels it and
                runs the turn again with that message.

        Raises:
            SetupError: the handler is not ``async``, takes other parameters, or an
                option is out of range.
        """
        options = TurnOptions(quiet, max_wait, max_messages, max_chars, interrupt)
        self._add(_turn_spec(handler, filters, options))


def _turn_spec(
    func: Callable[..., Awaitable[None]], filters: tuple[FilterLike, ...], options: TurnOptions
) -> TurnSpec:
    check_async(func, "turn handler", _EXAMPLE)
    check_arity(func, 1, "turn handler", _EXAMPLE)
    return TurnSpec(
        func=func, kind="turn", name=name_of(func), filter=all_of(filters), options=options
    )
