"""Handler errors in tests: what the harness collects, and how it raises one into the test.

An exception a handler raises and no ``@bot.on_error`` handler takes reaches the harness
through ``bot.add_error_listener``. The harness keeps it as a ``HandlerError`` and, unless told
not to, raises it into the test at the next wait, with notes that name the handler, the event
and the conversation so far.

A failure the test kit raises (a failed expectation, a handler error) is about the test's own
line, so pytest leaves the kit's frames out of its traceback: the modules on the way set
``__tracebackhide__ = kit_failure``. A bug inside the kit (any other exception) keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NOTE_PREFIX", "HandlerError", "annotated", "kit_failure"]

NOTE_PREFIX = "imbot.testing: raised by the bot"
"""How the note on a re-raised handler error begins."""


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
    note = f"{NOTE_PREFIX}{handler} handling {first.event_type}"
    if where:
        note += f", noticed {where}"
    if len(pending) > 1:
        note += f" ({len(pending) - 1} more handler error(s) in harness.errors)"
    exc.add_note(note)
    if transcript is not None:
        exc.add_note(transcript)
    return exc


def kit_failure(excinfo: Any) -> bool:
    """Whether pytest should hide a test-kit frame from this failure's traceback.

    Set as ``__tracebackhide__`` in the kit's modules. Hidden for what the kit raises on
    purpose: an ``AssertionError`` (a failed expectation, with the transcript) and a handler
    error (its own frames, in the bot, stay); shown for anything else, a bug in the kit.

    Args:
        excinfo: pytest's ``ExceptionInfo`` (``None`` when pytest asks without one).
    """
    exc = getattr(excinfo, "value", None)
    if exc is None or isinstance(exc, AssertionError):
        return True
    notes = getattr(exc, "__notes__", None) or ()
    return any(isinstance(n, str) and n.startswith(NOTE_PREFIX) for n in notes)
