"""When a handler that failed on a transient API error runs again, and when it is given up.

A handler that raises a transient error (the API unreachable or timed out, a 429, a 5xx:
``imbot.errors.is_transient``) has not done its job: its event stays pending and runs again
after a growing delay (honouring ``Retry-After``), holding its conversation's lane so the
conversation stays in order. Its sends keep their idempotency keys, so a reply that did go
out is not sent twice. Past the deadline the event becomes a dead letter.

``Backoff`` paces the loops that wait out a shared store (Redis) going away: the lanes,
the takeover, the questions and the notices all pause the same way between tries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import anyio

__all__ = ["Backoff", "HandlerRetry"]


@dataclass(frozen=True, slots=True)
class HandlerRetry:
    """How handlers failing on transient API errors are retried: ``Bot(handler_retry=...)``.

    Example:
        >>> bot = Bot(handler_retry=HandlerRetry(deadline=600, max_delay=30))

    Attributes:
        deadline: seconds from an event's first failure after which it is given up and
            kept as a dead letter (an hour by default).
        first_delay: seconds before the first retry.
        max_delay: the longest wait between two attempts.
        poison_after: an event whose handling was under way when the process died this
            many times in a row is a poison event: a dead letter, not run again.
    """

    deadline: float = 3600.0
    first_delay: float = 1.0
    max_delay: float = 60.0
    poison_after: int = 3

    def __post_init__(self) -> None:
        if self.deadline < 0 or self.first_delay <= 0 or self.max_delay < self.first_delay:
            raise ValueError(
                "HandlerRetry needs deadline >= 0 and 0 < first_delay <= max_delay, got "
                f"{self.deadline}, {self.first_delay}, {self.max_delay}"
            )
        if self.poison_after < 1:
            raise ValueError(f"poison_after must be at least 1, got {self.poison_after}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failure (1 for the first).

        Doubling from ``first_delay`` up to ``max_delay``, with ±20 % jitter so that lanes
        failing together do not retry together; a server's ``Retry-After`` is honoured
        when it asks for longer, up to ``max_delay``.
        """
        base = min(self.max_delay, self.first_delay * float(2 ** max(0, attempt - 1)))
        wait = base * random.uniform(0.8, 1.2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(self.max_delay, wait)


class Backoff:
    """Pauses between tries of a call that meets an outage, reset by a success.

    Each pause doubles from ``first`` up to ``most``, with ±20 % jitter so that processes
    that lost the store together do not all come back in the same instant.

    Attributes:
        failures: the pauses taken since the last ``reset`` (``0``: the first failure).
    """

    __slots__ = ("_delay", "_first", "_most", "failures")

    def __init__(self, first: float = 0.05, most: float = 5.0) -> None:
        self._first = self._delay = first
        self._most = most
        self.failures = 0

    async def pause(self) -> None:
        """Sleep before the next try; the pause after it is twice as long."""
        self.failures += 1
        await anyio.sleep(self._delay * random.uniform(0.8, 1.2))
        self._delay = min(self._delay * 2, self._most)

    def reset(self) -> None:
        """The call went through: the next outage starts again from ``first``."""
        self._delay, self.failures = self._first, 0
