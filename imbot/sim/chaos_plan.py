"""Chaos mode's decisions and its switch: the same bad day for the same seed.

``ChaosPlan`` decides the fate of each call; ``ChaosControl`` switches chaos on and off while
the simulator runs, takes the API down for a while, and counts what it did.

How a run is replayed: every decision belongs to a *stream*, a kind of call about one subject
(``POST /api/v1/imessage/messages @echo>+15555550100``, or the ``imessage.received`` webhooks
of that conversation), and is the n-th decision of its stream. It is drawn from a hash of
``(seed, stream, n)``, not from one shared random sequence, so the calls of other streams,
in whatever order concurrency puts them, do not change it. The same seed therefore gives the
same faults to the same calls as long as each stream sees its calls in the same order: true
of a conversation's webhooks (delivered one at a time, in order) and of a bot that answers
each conversation's events one at a time, as imbot's lanes do. Streams keyed by route only
(list reads, say) are replayed exactly when those calls are not concurrent.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from imbot.sim.chaos import API_ERRORS, PRESETS, ApiFault, Chaos, WebhookFault

__all__ = ["ChaosControl", "ChaosPlan", "Fault"]


def _uniforms(seed: int, stream: str, index: int) -> tuple[float, float]:
    # A hash rather than one random.Random: each (stream, index) has its own numbers, so
    # the calls of other streams cannot shift them (see the module docstring).
    digest = hashlib.blake2b(f"{seed}\x1f{stream}\x1f{index}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64, int.from_bytes(digest[8:], "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault chaos caused, for the log that lets a failing run be read and replayed.

    Attributes:
        stream: the calls it belongs to (``"api POST /api/v1/imessage/messages @echo>+1555…"``).
        index: the 0-based position of the faulted call in its stream (``-1`` for a call
            the outage refused: outages go by the clock, not by the plan).
        fault: what happened (``"429"``, ``"slow"``, ``"duplicate"``, ``"down"``…).
    """

    stream: str
    index: int
    fault: str


class ChaosPlan:
    """The decisions of one ``Chaos``: the n-th call of a stream always meets the same fate.

    Example:
        >>> plan = ChaosPlan(Chaos(seed=7, api_errors=0.5))
        >>> plan.api("GET /api/v1/imessage/conversations")  # '502', '429', None...

    Args:
        chaos: the settings.
    """

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self._next: dict[str, int] = {}

    def _draw(self, stream: str) -> tuple[int, float, float]:
        index = self._next.get(stream, 0)
        self._next[stream] = index + 1
        return (index, *_uniforms(self.chaos.seed, stream, index))

    def api(self, stream: str) -> ApiFault | None:
        """Decide the fate of the next API call of ``stream``: a fault, or ``None``."""
        return self.api_decision(stream)[1]

    def api_decision(self, stream: str) -> tuple[int, ApiFault | None]:
        """Like ``api``, with the call's index in its stream."""
        chaos = self.chaos
        index, u, v = self._draw("api " + stream)
        if u < chaos.api_errors:
            return index, _weighted(v, chaos.error_weights)
        if u < chaos.api_errors + chaos.slow:
            return index, "slow"
        return index, None

    def webhook(self, stream: str, *, can_retry: bool = True) -> WebhookFault | None:
        """Decide the fate of the next webhook of ``stream``: a fault, or ``None``.

        Args:
            stream: the webhooks it belongs to.
            can_retry: whether the retry schedule has a retry left; without one, a
                duplicate or a failed first attempt would lose the event, so neither is
                chosen (the decision is still used up, to keep the stream in step).
        """
        return self.webhook_decision(stream, can_retry=can_retry)[1]

    def webhook_decision(
        self, stream: str, *, can_retry: bool = True
    ) -> tuple[int, WebhookFault | None]:
        """Like ``webhook``, with the webhook's index in its stream."""
        chaos = self.chaos
        index, u, _ = self._draw("webhook " + stream)
        duplicate = chaos.duplicate_webhooks
        late = duplicate + chaos.late_webhooks
        failed = late + chaos.failed_first_delivery
        if u < duplicate:
            return index, "duplicate" if can_retry else None
        if u < late:
            return index, "late"
        if u < failed:
            return index, "failed_first" if can_retry else None
        return index, None


def _weighted(u: float, weights: tuple[float, float, float]) -> ApiFault:
    point = u * sum(weights)
    for code, weight in zip(API_ERRORS, weights, strict=True):
        if point < weight:
            return code
        point -= weight
    return next(
        code for code, w in zip(reversed(API_ERRORS), reversed(weights), strict=True) if w > 0
    )


_LOG_SIZE = 1000
_DEFAULT_PRESET = "mild"


class ChaosControl:
    """Chaos while the simulator runs: on or off, the API down or up, and what it did.

    ``sim.chaos`` is one. Switching it on with new settings starts a fresh plan (the same
    seed replays from the start); switching it off and on again continues the plan.

    Example:
        >>> sim.chaos.enable(Chaos.parse("bad-day,seed=3"))
        >>> sim.chaos.take_down(10)  # API calls get no answer for 10 s
        >>> sim.chaos.stats["429"]

    Args:
        chaos: the settings to start with; ``None`` for none (chaos off).
        clock: monotonic seconds, replaceable in tests.

    Attributes:
        stats: how many calls chaos looked at (``api_calls``, ``webhooks``) and how many met
            each fault (``"429"``, ``"502"``, ``"503"``, ``"slow"``, ``"down"``,
            ``"duplicate"``, ``"late"``, ``"failed_first"``).
        log: the latest faults, oldest first (at most 1,000).
    """

    def __init__(
        self, chaos: Chaos | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._plan = ChaosPlan(chaos) if chaos is not None else None
        self._enabled = chaos is not None
        self._down_until = 0.0
        self._paused = 0
        self.stats: Counter[str] = Counter()
        self.log: deque[Fault] = deque(maxlen=_LOG_SIZE)

    @property
    def config(self) -> Chaos | None:
        """The current settings (kept while chaos is off), or ``None``."""
        return self._plan.chaos if self._plan is not None else None

    @property
    def enabled(self) -> bool:
        """Whether chaos is switched on."""
        return self._enabled

    @property
    def active(self) -> bool:
        """Whether calls meet chaos now: switched on and not paused."""
        return self._enabled and not self._paused and self._plan is not None

    def configure(self, chaos: Chaos | None, *, enabled: bool = True) -> None:
        """Replace the settings (a fresh plan and fresh stats) and switch on or off.

        Args:
            chaos: the new settings; ``None`` forgets them (chaos off).
            enabled: switch on (the default) or leave off.
        """
        self._plan = ChaosPlan(chaos) if chaos is not None else None
        self._enabled = enabled and chaos is not None
        self.stats.clear()
        self.log.clear()

    def enable(self, chaos: Chaos | None = None) -> None:
        """Switch chaos on: with new settings, or the current ones (``mild`` when none)."""
        if chaos is not None or self._plan is None:
            self.configure(chaos if chaos is not None else PRESETS[_DEFAULT_PRESET])
        self._enabled = True

    def disable(self) -> None:
        """Switch chaos off; the settings stay for the next ``enable()``."""
        self._enabled = False

    def take_down(self, seconds: float) -> None:
        """Make the API unreachable for ``seconds`` (``0`` brings it back now).

        Every ``/api`` request in that time has its connection closed without an answer,
        whether chaos is switched on or not; the phone API, the chat page and webhook
        delivery go on.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"take_down needs seconds >= 0, not {seconds!r}")
        self._down_until = self._clock() + seconds if seconds else 0.0

    def bring_up(self) -> None:
        """End an API outage now."""
        self._down_until = 0.0

    @property
    def down_for(self) -> float:
        """Seconds the API stays down; ``0.0`` when it is up."""
        return max(0.0, self._down_until - self._clock())

    def is_down(self) -> bool:
        """Whether an API call now meets the outage (not while paused)."""
        return not self._paused and self._down_until > self._clock()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No chaos and no outage inside the block: for set-up calls that are not the test.

        Calls made meanwhile use up no decisions, so the plan stays in step.

        Example:
            >>> with sim.chaos.paused():
            ...     await agent.subscribe(port)
        """
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def api_fault(self, stream: str) -> tuple[ApiFault, Chaos] | None:
        """Decide the next API call of ``stream``; ``None`` when it goes through untouched."""
        plan = self._plan
        if plan is None or not self.active:
            return None
        self.stats["api_calls"] += 1
        index, fault = plan.api_decision(stream)
        if fault is None:
            return None
        self._note("api " + stream, index, fault)
        return fault, plan.chaos

    def webhook_fault(self, stream: str, *, can_retry: bool) -> tuple[WebhookFault, Chaos] | None:
        """Decide the first attempt of the next webhook of ``stream`` (see ``ChaosPlan``)."""
        plan = self._plan
        if plan is None or not self.active:
            return None
        self.stats["webhooks"] += 1
        index, fault = plan.webhook_decision(stream, can_retry=can_retry)
        if fault is None:
            return None
        self._note("webhook " + stream, index, fault)
        return fault, plan.chaos

    def note_down(self, stream: str) -> None:
        """Count an API call refused by the outage."""
        self._note("api " + stream, -1, "down")

    def _note(self, stream: str, index: int, fault: str) -> None:
        self.stats[fault] += 1
        self.log.append(Fault(stream, index, fault))

    def status(self) -> dict[str, Any]:
        """The state as JSON: ``enabled``, ``spec``, ``config``, ``down_for``, ``stats``."""
        chaos = self.config
        return {
            "enabled": self._enabled,
            "spec": chaos.spec() if chaos is not None else None,
            "config": chaos.to_json() if chaos is not None else None,
            "down_for": round(self.down_for, 3),
            "stats": dict(self.stats),
            "presets": list(PRESETS),
        }
