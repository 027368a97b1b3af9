"""Walking a list endpoint page by page without yielding a row twice or skipping one.

The list endpoints page by ``offset``, newest first. A row that arrives while a walk is
between pages lands at the head and pushes every older row down one place, so advancing
the offset by the page's length would meet the last rows of the page before again.

- ``walk_by_offset`` keeps offset paging and drops any row whose id it has already
  yielded. It serves the short lists (connections, contact rules, conversations), where
  remembering every id costs little.
- ``walk_by_time`` serves messages, whose history can be long. After the first page it
  asks only for rows created at or before the last row seen (plus a millisecond or a
  second when the service's times look rounded to those), so rows arriving meanwhile fall
  outside the window and cannot push it; the offset counts the rows of that window
  already yielded, and their ids, the only ones kept, drop a repeat. Memory stays at
  about a page, however long the history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["TIME_SLACK", "RowT", "end_instant", "walk_by_offset", "walk_by_time"]

TIME_SLACK = timedelta(seconds=1)
"""How far past the last row seen a later page's window reaches, when times are in seconds."""

_MILLISECOND = timedelta(milliseconds=1)


class _Row(Protocol):
    @property
    def id(self) -> str: ...


class _TimedRow(_Row, Protocol):
    @property
    def created_at(self) -> datetime: ...


RowT = TypeVar("RowT", bound=_Row)
"""Any row with an ``id``: what ``walk_by_offset`` yields."""
TimedRowT = TypeVar("TimedRowT", bound=_TimedRow)


async def walk_by_offset(
    fetch: Callable[[int, int], Awaitable[list[RowT]]], page_size: int
) -> AsyncIterator[RowT]:
    """Every row of an offset-paged list, each once; ``fetch(limit, offset)`` gets a page.

    A page shorter than ``page_size`` is the last.
    """
    seen: set[str] = set()
    offset = 0
    while True:
        page = await fetch(page_size, offset)
        for row in page:
            if row.id not in seen:
                seen.add(row.id)
                yield row
        if len(page) < page_size:
            return
        offset += len(page)


async def walk_by_time(
    fetch: Callable[[int, int, datetime | None], Awaitable[list[TimedRowT]]],
    page_size: int,
    end: datetime | None,
) -> AsyncIterator[TimedRowT]:
    """Every row of a newest-first list, each once, even while new rows arrive.

    Args:
        fetch: ``fetch(limit, offset, before)`` gets one page of rows created at or before
            ``before`` (``None``: the caller's own filters alone).
        page_size: rows per page; a shorter page is the last.
        end: the caller's own upper bound, as an instant, if it gave one: a window never
            reaches past it.
    """
    window: list[tuple[datetime, str]] = []  # yielded rows that later windows still hold
    before: datetime | None = None
    offset = 0
    while True:
        page = await fetch(page_size, offset, before)
        held = {row_id for _, row_id in window}
        fresh = 0
        for row in page:
            stamp = _aware(row.created_at)
            if row.id in held or (before is not None and stamp > before):
                continue  # met before, or outside the window asked for
            held.add(row.id)
            window.append((stamp, row.id))
            fresh += 1
            yield row
        if len(page) < page_size:
            return
        last = _aware(page[-1].created_at)
        slack = _rounding(last)
        bound = last + slack
        if end is not None and end < bound:
            bound = end
        if before is not None and before < bound:
            bound = before  # windows only ever shrink
        window = [(stamp, row_id) for stamp, row_id in window if stamp <= bound]
        # With rounded times a row stamped at the bound may lie past it, outside the
        # window: it is kept, to drop a repeat, but not counted.
        count = sum(1 for stamp, _ in window if stamp < bound) if slack else len(window)
        if not fresh and bound == before:
            # Nothing new and the window did not shrink (a service that ignores the bound):
            # step over the page, as plain offset paging would, so the walk always ends.
            count = offset + len(page)
        before, offset = bound, count


def end_instant(value: date | str | None, zone_name: str | None) -> datetime | None:
    """The instant an ``end_datetime`` filter stands for, as the service reads it.

    A date (or ``YYYY-MM-DD``) is the end of that day, a naive date-time is read in
    ``zone_name`` (UTC when ``None``), a zoned one is exact. Text that is neither, or an
    unknown zone, gives ``None``: the walk then relies on the service's own filter.
    """
    if value is None:
        return None
    try:
        zone: tzinfo = ZoneInfo(zone_name) if zone_name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return datetime.combine(value, time.max, zone)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _rounding(stamp: datetime) -> timedelta:
    """How much later than ``stamp`` the row may really have been created.

    Nothing when the time has microseconds; a millisecond, or a second, when the service
    seems to round its times to those.
    """
    if stamp.microsecond % 1000:
        return timedelta(0)
    return _MILLISECOND if stamp.microsecond else TIME_SLACK


def _aware(stamp: datetime) -> datetime:
    # The wire's times carry a zone; one without is UTC, as the service writes them.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
