"""A forgotten ``await``: the test fails at once and says so, instead of waiting for nothing.

``ctx.reply("hi")`` without ``await`` makes a coroutine and drops it: nothing is sent, and
Python only warns (``RuntimeWarning: coroutine 'Context.reply' was never awaited``) when the
coroutine is collected, which pytest shows in its warnings summary, after a test that timed
out waiting for the reply. While a ``BotHarness`` runs, ``noticing_unawaited`` hands every
such warning (from the bot's handlers, or from the test itself) to the harness, which raises
it into the test at the next wait with the line that dropped the coroutine:

```text
AssertionError: coroutine 'Context.reply' was never awaited, at bot.py:12: did you forget
`await`? `ctx.reply(ctx.text)` makes a coroutine that does nothing until it is awaited;
write `await ctx.reply(ctx.text)`
```

Python warns where the coroutine is collected, which for a call whose result is dropped is
its own line. The other warnings go where they went before.
"""

from __future__ import annotations

import io
import linecache
import os
import re
import tokenize
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["forgot_await", "noticing_unawaited"]

_NEVER_AWAITED = re.compile(r"^coroutine '(?P<name>[^']+)' was never awaited")


def _where(filename: str, lineno: int) -> str:
    try:
        shown = os.path.relpath(filename)
    except ValueError:  # another drive, on Windows
        shown = filename
    if shown.startswith(".."):
        shown = filename
    return f"{shown}:{lineno}"


def _code(filename: str, lineno: int) -> str:
    """The source line, without its comment; ``""`` when it cannot be read."""
    line = linecache.getline(filename, lineno).strip()
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return line[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):
        pass  # a line of a longer statement: keep it as it is
    return line


def forgot_await(message: str, filename: str, lineno: int) -> str | None:
    """What to tell the test about a warning, when it is a coroutine that was never awaited.

    Example:
        >>> forgot_await("coroutine 'Context.reply' was never awaited", "bot.py", 12)
        "coroutine 'Context.reply' was never awaited, at bot.py:12: did you forget `await`?"

    Args:
        message: the warning's text.
        filename: where Python says it happened (where the coroutine was dropped).
        lineno: the line there.

    Returns:
        The failure message, or ``None`` for any other warning.
    """
    found = _NEVER_AWAITED.match(message)
    if found is None:
        return None
    text = f"coroutine {found['name']!r} was never awaited, at {_where(filename, lineno)}: "
    text += "did you forget `await`?"
    code = _code(filename, lineno)
    if code and not code.startswith("await ") and "(" in code:
        text += (
            f" `{code}` makes a coroutine that does nothing until it is awaited; "
            f"write `await {code}`"
        )
    return text


class _Hook:
    """The one ``warnings.showwarning`` hook, shared by every block that is running.

    Blocks may end in any order (two harnesses in parallel tasks), which nested
    ``warnings.catch_warnings`` do not allow: one is entered when the first block starts
    and left, putting the filters and the display back, when the last one ends.
    """

    def __init__(self) -> None:
        self.reports: list[Callable[[str], None]] = []
        self.previous: Callable[..., object] = warnings.showwarning
        self.saved: warnings.catch_warnings[None] | None = None

    def show(  # noqa: PLR0917 - the signature of warnings.showwarning
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if self.reports and issubclass(category, RuntimeWarning):
            failure = forgot_await(str(message), filename, lineno)
            if failure is not None:
                for report in list(self.reports):
                    report(failure)
                return
        self.previous(message, category, filename, lineno, file, line)

    def add(self, report: Callable[[str], None]) -> None:
        if not self.reports:
            self.saved = warnings.catch_warnings()
            self.saved.__enter__()
            self.previous = warnings.showwarning
            warnings.showwarning = self.show
            # Always shown while a block runs: not deduplicated, and not an error (raised in
            # a finalizer, an error would only be printed, never reach the test).
            warnings.filterwarnings(
                "always", message=_NEVER_AWAITED.pattern[1:], category=RuntimeWarning
            )
        self.reports.append(report)

    def remove(self, report: Callable[[str], None]) -> None:
        self.reports.remove(report)
        if not self.reports and self.saved is not None:
            saved, self.saved = self.saved, None
            saved.__exit__(None, None, None)


_HOOK = _Hook()


@contextmanager
def noticing_unawaited(report: Callable[[str], None]) -> Iterator[None]:
    """Hand ``report`` every never-awaited coroutine warning raised while the block runs.

    Such warnings go to ``report`` instead of the usual display; every other warning is
    shown as before. Blocks may overlap and end in any order; the hook and its warning
    filter are taken out when the last one ends.

    Example:
        >>> with noticing_unawaited(failures.append):
        ...     ...

    Args:
        report: called with the failure message (see ``forgot_await``), synchronously,
            wherever the coroutine was dropped: keep it quick and do not raise.
    """
    _HOOK.add(report)
    try:
        yield
    finally:
        _HOOK.remove(report)
