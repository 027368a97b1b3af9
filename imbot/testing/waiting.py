"""Waiting for a condition with a deadline, where no event stream says when it changes.

``Conversation`` wakes on the phone's event stream. Tests that drive the simulator
themselves (``SimAgent``) or watch something else (a bot's ``/healthz``, a list a handler
fills) poll instead: ``eventually`` asks again every few milliseconds and fails at a deadline,
so a test never sleeps a fixed time hoping the effect is there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from imbot.testing.handler_errors import kit_failure

__all__ = ["eventually"]

# pytest shows the test's line, not the kit's, for a failure the kit raises on purpose.
__tracebackhide__ = kit_failure

_T = TypeVar("_T")


async def eventually(
    probe: Callable[[], Awaitable[_T]],
    accept: Callable[[_T], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> _T:
    """Call ``probe`` until ``accept`` takes its value; return that value.

    Example:
        >>> texts = await eventually(
        ...     lambda: agent.agent_texts(PHONE), lambda texts: "echo: hi" in texts
        ... )

    Args:
        probe: reads the current value (an async callable, called once per round).
        accept: whether the value is the one awaited.
        timeout: seconds before giving up.
        interval: seconds between two rounds.

    Returns:
        The first value ``accept`` took.

    Raises:
        AssertionError: no value was accepted within ``timeout``; the message shows the last.
    """
    last: _T | None = None
    with anyio.move_on_after(timeout):
        while True:
            last = await probe()
            if accept(last):
                return last
            await anyio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:g} s; last value: {last!r}")
