"""Turns in tests: send a burst of texts, and see which turns the bot ran.

```python
turns = record_turns(bot)  # before the harness starts the bot
async with BotHarness(bot, connect_event=False) as harness:
    chat = harness.chat()
    await say_burst(chat, ["hey", "quick q", "weather in Paris?"], gap=0.3)
    await chat.expect_reply(contains="Paris")
    await harness.settle()
    assert turns.single().texts == ["hey", "quick q", "weather in Paris?"]
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from imbot.testing.handler_errors import kit_failure

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.routing.router import Router
    from imbot.testing.conversation import Conversation
    from imbot.testing.timeline import TimelineItem
    from imbot.types import Next

__all__ = ["TurnLog", "TurnRun", "record_turns", "say_burst"]

# pytest shows the test's line, not the kit's, for a failure the kit raises on purpose.
__tracebackhide__ = kit_failure


async def say_burst(
    chat: Conversation, texts: Sequence[str], *, gap: float = 0.3
) -> list[TimelineItem]:
    """The human sends several texts in a row, ``gap`` seconds apart.

    Example:
        >>> await say_burst(chat, ["hey", "quick q", "weather in Paris?"], gap=0.3)

    Args:
        chat: the human's conversation.
        texts: the texts, in order.
        gap: seconds between two texts.

    Returns:
        The human's bubbles.
    """
    if isinstance(texts, str):
        raise TypeError("say_burst takes a list of texts, e.g. ['hey', 'quick q']")
    sent: list[TimelineItem] = []
    for index, text in enumerate(texts):
        if index:
            await anyio.sleep(gap)
        sent.append(await chat.say(text))
    return sent


@dataclass
class TurnRun:
    """One run of a turn handler, as ``record_turns`` saw it.

    Attributes:
        handler: the handler's qualified name.
        texts: the turn's message texts (``""`` for a media-only message).
        reactions: the kinds of the turn's tapbacks.
        restarts: ``ctx.turn.restarts`` when the run started.
        outcome: ``running``; ``done`` (returned); ``cancelled`` (a new message interrupted
            it, or the bot stopped); ``raised`` (an exception left the handler). The run's
            state is saved just after it ends: ``await harness.settle()`` before reading it.
    """

    handler: str | None
    texts: list[str]
    reactions: list[str]
    restarts: int
    outcome: Literal["running", "done", "cancelled", "raised"] = "running"


@dataclass
class TurnLog:
    """The turn handler runs of a bot, in the order they started (``record_turns``).

    Attributes:
        runs: every run, interrupted ones included.
    """

    runs: list[TurnRun] = field(default_factory=list)

    @property
    def finished(self) -> list[TurnRun]:
        """The runs that were not cancelled: one per turn answered."""
        return [run for run in self.runs if run.outcome in ("done", "raised")]

    @property
    def cancelled(self) -> list[TurnRun]:
        """The runs a new message interrupted (or a shutdown cancelled)."""
        return [run for run in self.runs if run.outcome == "cancelled"]

    def clear(self) -> None:
        """Forget the runs so far (say, the turn of the ``connect`` text)."""
        self.runs.clear()

    def single(self) -> TurnRun:
        """The one finished run; fails unless exactly one turn was answered.

        Call it once the bot is quiet (``await harness.settle()``).

        Raises:
            AssertionError: no finished run, or more than one.
        """
        finished = self.finished
        if len(finished) != 1:
            shown = "\n".join(f"  {run}" for run in self.runs) or "  (none)"
            raise AssertionError(
                f"expected one turn, but {len(finished)} turn runs finished:\n{shown}"
            )
        return finished[0]


def record_turns(bot: Router) -> TurnLog:
    """Record every run of the bot's turn handlers, through a middleware.

    Call it before the bot starts (a middleware cannot be added later).

    Example:
        >>> turns = record_turns(bot)
        >>> ...
        >>> assert [run.texts for run in turns.finished] == [["hey", "quick q"]]

    Args:
        bot: the bot (or a router of it: then only that router's handlers are seen).

    Returns:
        The log, filled as the bot runs.
    """
    log = TurnLog()

    async def record_turn(ctx: Context[Any], call_next: Next) -> None:
        turn = ctx.turn
        if turn is None:
            await call_next(ctx)
            return
        run = TurnRun(
            handler=ctx.handler_name,
            texts=[message.content or "" for message in turn.messages],
            reactions=[str(reaction.reaction) for reaction in turn.reactions],
            restarts=turn.restarts,
        )
        log.runs.append(run)
        try:
            await call_next(ctx)
        except anyio.get_cancelled_exc_class():
            run.outcome = "cancelled"
            raise
        except BaseException:
            run.outcome = "raised"
            raise
        run.outcome = "done"

    bot.add_middleware(record_turn)
    return log
