"""Chaos mode's settings: how bad the simulator's day is, read from a compact spec.

``Chaos`` says which share of API calls is answered ``429`` (with a short ``Retry-After``),
``502``, ``503`` or too late for the client, and which share of webhooks is delivered twice,
late, or only after a failed first attempt. ``Chaos.parse`` reads the spec ``imbot sim
--chaos`` takes; ``PRESETS`` names a mild and a bad day. ``chaos_plan`` turns the settings
into decisions and switches them at run time; ``chaos_hooks`` applies the decisions to
requests and deliveries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["API_ERRORS", "PRESETS", "ApiFault", "Chaos", "WebhookFault"]

ApiFault = Literal["429", "502", "503", "slow"]
"""What chaos does to one API call: an error answer, or a right answer that comes too late."""

WebhookFault = Literal["duplicate", "late", "failed_first"]
"""What chaos does to one webhook: delivered twice, held back, or failed once then retried."""

API_ERRORS: tuple[ApiFault, ApiFault, ApiFault] = ("429", "502", "503")
"""The error statuses chaos answers with, in the order of ``Chaos.error_weights``."""
_SHARES = ("api_errors", "slow", "duplicate_webhooks", "late_webhooks", "failed_first_delivery")

_USAGE = (
    "a chaos spec is a preset (mild, bad-day) and/or key=value pairs separated by commas, "
    "like 'seed=7,api=10%,webhooks=10%'"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Chaos:
    """How bad the simulator's day is. Every share is a fraction of calls, 0 to 1.

    Example:
        >>> Chaos(seed=7, api_errors=0.1, duplicate_webhooks=0.05, late_webhooks=0.05)
        >>> Chaos.parse("bad-day,seed=7")

    Attributes:
        seed: picks the day; the same seed gives the same faults to the same calls.
        api_errors: share of ``/api`` calls answered ``429``, ``502`` or ``503``.
        error_weights: relative weights of ``429``, ``502`` and ``503`` among those errors.
        retry_after: the ``Retry-After`` seconds sent with a ``429`` or ``503`` (an integer,
            as Inkbox sends it).
        slow: share of ``/api`` calls answered ``slow_delay`` seconds late. The call does its
            work at once; only the answer waits, so a client that times out and retries must
            rely on its ``Idempotency-Key`` not to do the work twice.
        slow_delay: how late a slow answer comes; by default past the 30-second timeout of
            imbot's client and of the ``inkbox`` SDK.
        duplicate_webhooks: share of webhooks delivered twice: the receiver's answer to the
            first attempt is lost, so the delivery is retried (same envelope ``id``, fresh
            request id and signature) on the webhook retry schedule.
        late_webhooks: share of webhooks whose first attempt waits ``late_delay`` seconds;
            the later events of that conversation wait behind it, as they do on a retry.
        late_delay: how long a late webhook waits, in seconds.
        failed_first_delivery: share of webhooks whose first attempt fails before it reaches
            the receiver (logged as a failed delivery), then is retried on schedule.

    Raises:
        ValueError: a share outside 0-1, shares of one side adding up to more than 1, a
            negative delay, or weights that are negative or all zero.
    """

    seed: int = 0
    api_errors: float = 0.0
    error_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    retry_after: int = 1
    slow: float = 0.0
    slow_delay: float = 31.0
    duplicate_webhooks: float = 0.0
    late_webhooks: float = 0.0
    late_delay: float = 2.0
    failed_first_delivery: float = 0.0

    def __post_init__(self) -> None:
        for name in _SHARES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"chaos {name} is a share of calls from 0 to 1, not {value!r}")
        if self.api_errors + self.slow > 1.0:
            raise ValueError("chaos api_errors + slow must not exceed 1 (one fault per call)")
        if self.duplicate_webhooks + self.late_webhooks + self.failed_first_delivery > 1.0:
            raise ValueError(
                "chaos duplicate_webhooks + late_webhooks + failed_first_delivery must not "
                "exceed 1 (one fault per webhook)"
            )
        if self.retry_after < 0 or self.slow_delay < 0 or self.late_delay < 0:
            raise ValueError("chaos retry_after, slow_delay and late_delay must not be negative")
        if len(self.error_weights) != 3 or any(w < 0 for w in self.error_weights):
            raise ValueError("chaos error_weights are three weights (429, 502, 503), each >= 0")
        if self.api_errors > 0 and sum(self.error_weights) <= 0:
            raise ValueError("chaos error_weights must not all be 0 when api_errors is set")

    @classmethod
    def parse(cls, spec: str) -> Chaos:
        """Read a compact spec, as ``imbot sim --chaos`` takes it.

        A spec is presets and ``key=value`` pairs separated by commas, applied left to right.
        Keys: ``seed``; ``api`` (``api_errors``), ``429``/``502``/``503`` (their weights),
        ``retry_after``, ``slow``, ``slow_delay``; ``webhooks`` (split evenly over the three
        webhook faults), ``duplicate``, ``late``, ``late_delay``, ``failed_first``. Shares
        take ``0.1`` or ``10%``; delays take ``2`` or ``2s``.

        Example:
            >>> Chaos.parse("seed=7,api=10%,webhooks=10%,late_delay=0.5")
            >>> Chaos.parse("mild")

        Raises:
            ValueError: an unknown preset or key, or a value that does not read.
        """
        values: dict[str, Any] = {}
        items = [item.strip() for item in spec.split(",") if item.strip()]
        if not items:
            raise ValueError(f"empty chaos spec: {_USAGE}")
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip().lower().replace("-", "_")
            if not sep:
                preset = PRESETS.get(key.replace("_", "-"))
                if preset is None:
                    known = ", ".join(PRESETS)
                    raise ValueError(f"unknown chaos preset {item!r} (known: {known}); {_USAGE}")
                values.update(_values(preset))
                continue
            _apply(values, key, raw.strip(), item)
        return cls(**values)

    def spec(self) -> str:
        """The compact spec of this chaos: what differs from no chaos at all, ``parse``-able.

        Example:
            >>> Chaos(seed=7, api_errors=0.1).spec()
            'seed=7,api=0.1'
        """
        default = Chaos()
        parts = [f"seed={self.seed}"]
        for name, key in _SPEC_KEYS:
            value = getattr(self, name)
            if value != getattr(default, name):
                parts.append(f"{key}={value:g}")
        if self.error_weights != default.error_weights:
            weights = zip(API_ERRORS, self.error_weights, strict=True)
            parts.extend(f"{code}={weight:g}" for code, weight in weights)
        return ",".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object (the ``/sim/v1/chaos`` answer carries it)."""
        data = asdict(self)
        data["error_weights"] = dict(zip(API_ERRORS, self.error_weights, strict=True))
        return data


# (field, spec key) in the order spec() writes them.
_SPEC_KEYS = (
    ("api_errors", "api"),
    ("retry_after", "retry_after"),
    ("slow", "slow"),
    ("slow_delay", "slow_delay"),
    ("duplicate_webhooks", "duplicate"),
    ("late_webhooks", "late"),
    ("late_delay", "late_delay"),
    ("failed_first_delivery", "failed_first"),
)
_ALIASES = {key: name for name, key in _SPEC_KEYS} | {f.name: f.name for f in fields(Chaos)}
_WEBHOOK_SHARES = ("duplicate_webhooks", "late_webhooks", "failed_first_delivery")


def _values(chaos: Chaos) -> dict[str, Any]:
    return {f.name: getattr(chaos, f.name) for f in fields(chaos)}


def _number(raw: str, item: str) -> float:
    text = raw.lower()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    elif text.endswith("s"):
        text = text[:-1]
    try:
        return float(text) * scale
    except ValueError:
        raise ValueError(f"chaos {item!r}: {raw!r} is not a number; {_USAGE}") from None


def _apply(values: dict[str, Any], key: str, raw: str, item: str) -> None:
    if key in API_ERRORS:
        weights = list(values.get("error_weights", Chaos().error_weights))
        weights[API_ERRORS.index(key)] = _number(raw, item)
        values["error_weights"] = tuple(weights)
        return
    if key == "webhooks":
        share = _number(raw, item) / 3
        values.update(dict.fromkeys(_WEBHOOK_SHARES, share))
        return
    name = _ALIASES.get(key)
    if name is None or name == "error_weights":
        raise ValueError(f"unknown chaos key {key!r} in {item!r}; {_USAGE}")
    if name in ("seed", "retry_after"):
        number = _number(raw, item)
        if number != int(number):
            raise ValueError(f"chaos {name} takes a whole number, not {raw!r}")
        values[name] = int(number)
    else:
        values[name] = _number(raw, item)


PRESETS: dict[str, Chaos] = {
    # A few hiccups: what a bot meets on an ordinary day, and must shrug off.
    "mild": Chaos(
        api_errors=0.05, duplicate_webhooks=0.02, late_webhooks=0.02, failed_first_delivery=0.01
    ),
    # A bad day: one call in ten fails, some answers come after the client gave up, and one
    # webhook in ten arrives twice, late or after a failure.
    "bad-day": Chaos(
        api_errors=0.1,
        retry_after=2,
        slow=0.02,
        duplicate_webhooks=0.04,
        late_webhooks=0.03,
        late_delay=5.0,
        failed_first_delivery=0.03,
    ),
}
"""The named chaos settings ``Chaos.parse`` knows (seed 0; add ``seed=N`` to vary them)."""
