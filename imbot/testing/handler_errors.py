"""Handler errors in tests: what the harness collects, and how it raises one into the test.

An exception a handler raises and no ``@bot.on_error`` handler takes reaches the harness
through ``bot.add_error_listener``. The harness keeps it as a ``HandlerError`` and, unless told
not to, raises it into the test at the next wait, with notes that name the handler, the event
and the conversation so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HandlerError", "annotated"]


@dataclass(frozen=True, slots=True)
class HandlerError:
    """An exception a handler raised that no error handler took.

    Example:
        >>> error = harness.errors[0]
        >>> type(error.exception).__name__, error.event_type
        ('ZeroDivisionError', 'imessage.received')

    Attributes:
        exception: the exception.
        event_type: the event being handled (``imessage.received``…).
        handler: the handler's qualified name, when known.
    """

    exception: BaseException
    event_type: str
    handler: str | None


def annotated(
    pending: Sequence[HandlerError], *, where: str = "", transcript: str | None = None
) -> BaseException:
    """The first of ``pending``'s exceptions, with notes saying where it came from.

    Args:
        pending: the handler errors not raised into the test yet (at least one).
        where: when the harness noticed (``when the harness stopped``), if worth saying.
        transcript: the conversation so far, to add as a note.

    Returns:
        The exception, ready to raise.
    """
    first = pending[0]
    exc = first.exception
    handler = f" in {first.handler}" if first.handler else ""
    note = f"imbot.testing: raised by the bot{handler} handling {first.event_type}"
    if where:
        note += f", noticed {where}"
    if len(pending) > 1:
        note += f" ({len(pending) - 1} more handler error(s) in harness.errors)"
    exc.add_note(note)
    if transcript is not None:
        exc.add_note(transcript)
    return exc
