"""Retry policy: which failures are worth another attempt, and how long to wait first.

Retried: transport failures, ``429``, ``502``, ``503``, ``504`` and, for a keyed send, ``409
idempotency_in_progress``. The wait is exponential backoff with full jitter (a random delay
between 0 and ``base * 2**attempt``, capped), and never shorter than the server's
``Retry-After``. When the server asks for a longer wait than ``max_retry_after``, the typed
error is raised at once so the caller decides (a bot should not stall a reply for minutes).

A request that is not idempotent (creating a resource) is retried only when nothing reached
the server: a connection that could not be opened, or a ``429`` refusal.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from imbot.errors import ConnectError, InkboxError, TransportError

__all__ = [
    "IN_PROGRESS_CODE",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "parse_retry_after",
]

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses that mean "try again later" rather than "this request is wrong"."""

IN_PROGRESS_CODE = "idempotency_in_progress"
"""The error code of a keyed send whose first attempt is still running on the server."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds, or an HTTP date.

    Args:
        value: the header value, or ``None`` when absent.
        now: the current time, for HTTP dates; the clock when omitted.

    Returns:
        Seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to try a request, and how long to wait between tries.

    Attributes:
        max_attempts: attempts in total, the first included (1 disables retries).
        base: the first backoff window, in seconds.
        cap: the longest backoff window, in seconds.
        max_retry_after: the longest ``Retry-After`` honoured; a longer one raises instead.
        rng: returns a float in [0, 1); replaceable to make tests exact.

    Raises:
        ValueError: ``max_attempts`` is below 1, or a duration is negative.
    """

    max_attempts: int = 3
    base: float = 0.25
    cap: float = 8.0
    max_retry_after: float = 5.0
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base < 0 or self.cap < 0 or self.max_retry_after < 0:
            raise ValueError("base, cap and max_retry_after must not be negative")

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the wait before the next try: full jitter, but at least ``retry_after``.

        Args:
            attempt: how many attempts have failed so far, minus one (0 after the first).
            retry_after: the server's ``Retry-After``, in seconds, if it sent one.
        """
        window = min(self.cap, self.base * 2.0**attempt)
        delay = self.rng() * window
        return delay if retry_after is None else max(delay, retry_after)

    def is_retryable(self, error: InkboxError | TransportError, *, idempotent: bool) -> bool:
        """Tell whether ``error`` is worth another attempt, ignoring the attempt count.

        Args:
            error: the failure of the last attempt.
            idempotent: whether repeating the request cannot do the work twice (reads,
                deletes, keyed sends, typing, read receipts, tapbacks).
        """
        if isinstance(error, TransportError):
            return idempotent or isinstance(error, ConnectError)
        if not idempotent:
            return error.status == 429
        return error.status in RETRYABLE_STATUSES or error.code == IN_PROGRESS_CODE

    def next_delay(
        self, attempt: int, error: InkboxError | TransportError, *, idempotent: bool
    ) -> float | None:
        """Decide what to do after a failed attempt.

        Args:
            attempt: the 0-based number of the attempt that failed.
            error: its failure.
            idempotent: whether the request may be repeated safely.

        Returns:
            Seconds to wait before the next attempt, or ``None`` to raise ``error`` now.
        """
        if attempt + 1 >= self.max_attempts or not self.is_retryable(error, idempotent=idempotent):
            return None
        retry_after = error.retry_after if isinstance(error, InkboxError) else None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        return self.backoff(attempt, retry_after)
