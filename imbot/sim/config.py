"""The simulator's settings, frozen once it starts, and its clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imbot.sim.chaos import Chaos

__all__ = ["DEFAULT_TRIAGE_NUMBER", "Clock", "SimConfig"]

DEFAULT_TRIAGE_NUMBER = "+15550100000"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that shapes one simulator run.

    Attributes:
        db: SQLite file path, or ``":memory:"`` for a throwaway store.
        host: the interface to bind; loopback by default.
        port: the TCP port; ``0`` picks a free one.
        admin_key: the admin API key; ``None`` reuses the stored one or mints one.
        triage_number: the router number humans text ``connect @handle`` to.
        delivery_delay: seconds between ``sent`` and ``delivered`` for outbound messages.
        send_cap: outbound messages per identity per rolling window; ``None`` for no cap.
        send_cap_window: the length of the send cap's rolling window, in seconds.
        connect_event: whether the human's ``connect @handle`` text reaches the agent as
            the conversation's first ``imessage.received`` (the old flow; Inkbox's flow
            delivers nothing until the human's first message in the new thread).
        webhook_retry_delays: seconds to wait before each retry of a failed delivery;
            the number of attempts is one more than its length.
        webhook_timeout: seconds one delivery attempt may take.
        webhook_workers: how many deliveries may be in flight at once.
        unreachable: phone numbers whose deliveries fail from the start.
        sms_numbers: phone numbers without iMessage: sends go out as SMS and end ``sent``.
        declining_numbers: phone numbers whose deliveries end ``declined``.
        typing_ttl: seconds a typing bubble stays up without a refresh.
        media_limit: the largest media upload, in bytes.
        allowed_hosts: host names served besides loopback ones and the bound interface
            (``"*"`` for any); see ``imbot.sim.guard``.
        chaos: chaos mode's settings (``imbot.sim.chaos``), on from the start; ``None`` for
            none (it can still be switched on while running).
    """

    db: str = ":memory:"
    host: str = "127.0.0.1"
    port: int = 0
    admin_key: str | None = None
    triage_number: str = DEFAULT_TRIAGE_NUMBER
    delivery_delay: float = 0.0
    send_cap: int | None = 100
    send_cap_window: float = 86400.0
    connect_event: bool = False
    webhook_retry_delays: tuple[float, ...] = (5, 30, 120, 600, 1800)
    webhook_timeout: float = 10.0
    webhook_workers: int = 16
    unreachable: tuple[str, ...] = ()
    sms_numbers: tuple[str, ...] = ()
    declining_numbers: tuple[str, ...] = ()
    typing_ttl: float = 60.0
    media_limit: int = 10 * 1024 * 1024
    allowed_hosts: tuple[str, ...] = ()
    chaos: Chaos | None = None


class Clock:
    """Wall-clock time whose ISO stamps never repeat or go backwards.

    Rows from several tables are merged by ``created_at`` (the phone timeline), so two
    stamps taken in the same microsecond would make the order ambiguous; each new stamp
    is at least one microsecond after the previous one.
    """

    def __init__(self) -> None:
        self._last_us = 0
        # The stamp up to the seconds, for the last second seen: most stamps of a busy
        # second share it, and strftime costs more than the rest of a stamp.
        self._second = -1
        self._prefix = ""

    def time(self) -> float:
        """Return Unix seconds, as a float."""
        return time.time()

    def now(self) -> str:
        """Return a fresh ISO 8601 UTC stamp with microseconds and a ``Z`` suffix."""
        us = int(time.time() * 1_000_000)
        if us <= self._last_us:
            us = self._last_us + 1
        self._last_us = us
        second, micros = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = iso_from_us(second * 1_000_000)[:19]
        return f"{self._prefix}.{micros:06d}Z"


def iso_from_us(us: int) -> str:
    """Format Unix microseconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    # Integer arithmetic: a float of Unix seconds cannot hold every microsecond exactly.
    moment = _EPOCH + timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_from_seconds(seconds: float) -> str:
    """Format Unix seconds as an ISO 8601 UTC stamp (microseconds, ``Z``)."""
    return iso_from_us(int(seconds * 1_000_000))
