"""Sending bubbles like a person: a pause between them, with the typing bubble shown.

``Pacing`` says how long the pause before a bubble is: proportional to its length, within
a floor and a cap. ``Pacer`` spends that pause between two sends of one reply: half of it
lets the bubble just sent land (a message takes the typing bubble down on the phone), then
the typing bubble goes up again for the other half. ``send_bubbles`` sends a split reply,
``stream_bubbles`` a streamed one, each bubble under its own part of one idempotency key.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from imbot.errors import SetupError
from imbot.log import get_logger

if TYPE_CHECKING:
    from imbot.bot.bubbles import BubbleSplitter
    from imbot.models import Message

__all__ = ["Pacer", "Pacing", "SendPart", "send_bubbles", "stream_bubbles"]

_log = get_logger("imbot")

SendPart = Callable[[str, int], Awaitable["Message"]]
"""``send(text, part)``: send one bubble of a reply; ``part`` is 1 for the first."""


@dataclass(frozen=True, slots=True)
class Pacing:
    """The pause before each bubble after the first: ``per_char`` × its length, within bounds.

    Example:
        >>> bot = Bot(pacing=Pacing(per_char=0.02, min=0.5, max=3.0))
        >>> Pacing().pause("x" * 100)
        1.0

    Args:
        per_char: seconds of pause per character of the coming bubble.
        min: the shortest pause, in seconds.
        max: the longest pause, in seconds.

    Raises:
        SetupError: a value is negative, or ``min`` is above ``max``.
    """

    per_char: float = 0.01
    min: float = 0.5
    max: float = 2.0

    def __post_init__(self) -> None:
        if self.per_char < 0 or self.min < 0 or self.max < self.min:
            raise SetupError(
                f"pacing needs per_char >= 0 and 0 <= min <= max, got {self!r}",
            )

    @classmethod
    def instant(cls) -> Pacing:
        """No pauses at all: for tests (``BotHarness`` uses it unless told otherwise)."""
        return cls(per_char=0.0, min=0.0, max=0.0)

    def pause(self, text: str) -> float:
        """Seconds to wait before sending the bubble ``text`` (not the first of a reply)."""
        return max(self.min, min(self.max, len(text) * self.per_char))


class Pacer:
    """Spaces the sends of one reply as ``pacing`` says, showing the typing bubble between.

    Args:
        pacing: the pauses.
        show_typing: shows the typing bubble once; an error is logged, not raised.
    """

    __slots__ = ("_last", "_pacing", "_show_typing")

    def __init__(self, pacing: Pacing, show_typing: Callable[[], Awaitable[object]]) -> None:
        self._pacing = pacing
        self._show_typing = show_typing
        self._last: float | None = None

    async def send(self, text: str, part: int, send: SendPart) -> Message:
        """Wait for the bubble's turn, then send it with ``send(text, part)``."""
        if self._last is not None:
            await self._pause(self._pacing.pause(text), anyio.current_time() - self._last)
        message = await send(text, part)
        self._last = anyio.current_time()
        return message

    async def _pause(self, pause: float, elapsed: float) -> None:
        if pause and elapsed >= pause:
            return  # the text took longer to come than the pause: keep typing as it was
        await anyio.sleep(max(0.0, pause / 2 - elapsed))
        try:
            await self._show_typing()
        except Exception as exc:  # cosmetic: never fail a reply over it
            _log.warning("typing indicator failed", error=repr(exc))
        await anyio.sleep(max(0.0, pause - max(elapsed, pause / 2)))


async def send_bubbles(bubbles: Sequence[str], send: SendPart, pacer: Pacer) -> list[Message]:
    """Send a reply's bubbles in order, paced.

    Args:
        bubbles: the texts, in order.
        send: sends one bubble.
        pacer: the pauses and the typing bubble between them.
    """
    return [await pacer.send(text, part, send) for part, text in enumerate(bubbles, 1)]


async def stream_bubbles(
    chunks: AsyncIterable[str],
    splitter: BubbleSplitter,
    send: SendPart,
    pacer: Pacer,
    typing: AbstractAsyncContextManager[object],
) -> list[Message]:
    """Send streamed text as bubbles, each as soon as it is complete, typing meanwhile.

    An exception from ``chunks`` leaves the typing block (the bubble stops) and propagates;
    what was sent stays sent, and the text not yet sent is dropped. ``chunks`` is closed
    (``aclose``) when the function returns or fails.

    Args:
        chunks: the text, in pieces of any size.
        splitter: cuts it into bubbles.
        send: sends one bubble.
        pacer: the pauses and the typing bubble between them.
        typing: the typing block kept up while the stream runs.

    Returns:
        The messages sent, in order.
    """
    sent: list[Message] = []
    try:
        async with typing:
            async for chunk in chunks:
                for text in splitter.feed(chunk):
                    sent.append(await pacer.send(text, len(sent) + 1, send))
            for text in splitter.flush():
                sent.append(await pacer.send(text, len(sent) + 1, send))
    finally:
        # A send that failed (or a cancelled turn) abandons the stream: close it now, so a
        # model's response is not left open until the garbage collector finds it.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    return sent
