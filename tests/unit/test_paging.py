"""Paging by time: every row once, with times the simulator cannot produce.

The simulator stamps rows to the microsecond and honours ``end_datetime``; these tests cover
the services it does not imitate: one that rounds times down to the second or millisecond
in its answers, and one that ignores the bound altogether. Each is a small newest-first
list in memory, paged by ``limit``/``offset``, answering the walk's ``fetch`` calls.
``tests/unit/test_client.py`` walks the simulator itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from imbot.client._paging import end_instant, walk_by_offset, walk_by_time

T0 = datetime(2026, 6, 9, 14, 0, 0, 250_123, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    id: str
    created_at: datetime


class Service:
    """A newest-first list: rows kept to the microsecond, shown rounded down to ``unit``."""

    def __init__(self, unit: timedelta | None, *, honours_bound: bool = True) -> None:
        self.rows: list[Row] = []  # oldest first
        self.unit = unit
        self.honours_bound = honours_bound
        self.calls: list[tuple[int, int, datetime | None]] = []

    def add(self, n: int, step: timedelta = timedelta(milliseconds=300)) -> list[str]:
        start = self.rows[-1].created_at if self.rows else T0
        new = [Row(f"r{len(self.rows) + i}", start + step * (i + 1)) for i in range(n)]
        self.rows += new
        return [row.id for row in new]

    def _shown(self, row: Row) -> Row:
        if self.unit is None:
            return row
        stamp = row.created_at
        rounded = stamp - (stamp - datetime.min.replace(tzinfo=UTC)) % self.unit
        return replace(row, created_at=rounded)

    async def fetch(self, limit: int, offset: int, before: datetime | None) -> list[Row]:
        self.calls.append((limit, offset, before))
        newest_first = self.rows[::-1]
        if before is not None and self.honours_bound:
            newest_first = [row for row in newest_first if row.created_at <= before]
        return [self._shown(row) for row in newest_first[offset : offset + limit]]


async def walk(service: Service, page_size: int, arrivals: dict[int, int]) -> list[str]:
    walked: list[str] = []
    async for row in walk_by_time(service.fetch, page_size, None):
        walked.append(row.id)
        service.add(arrivals.get(len(walked), 0), step=timedelta(microseconds=137))
    return walked


@pytest.mark.parametrize(
    "unit", [None, timedelta(milliseconds=1), timedelta(seconds=1)], ids=["us", "ms", "s"]
)
async def test_rounded_times_neither_repeat_nor_skip_while_rows_arrive(
    unit: timedelta | None,
) -> None:
    service = Service(unit)
    existing = service.add(23)[::-1]
    walked = await walk(service, 4, {4: 6, 8: 1, 12: 9, 20: 3})
    assert walked == existing


async def test_rows_sharing_a_time_are_each_yielded_once() -> None:
    service = Service(timedelta(seconds=1))
    existing = service.add(12, step=timedelta(microseconds=1))[::-1]  # all in one second
    walked = await walk(service, 5, {5: 2, 10: 2})
    assert walked == existing


async def test_a_service_that_ignores_the_bound_still_ends() -> None:
    service = Service(None, honours_bound=False)
    existing = service.add(10)[::-1]
    walked = [row.id async for row in walk_by_time(service.fetch, 3, None)]
    assert walked == existing
    assert len(service.calls) < 30


async def test_the_callers_end_caps_every_window() -> None:
    service = Service(timedelta(seconds=1))
    service.add(9, step=timedelta(milliseconds=400))
    end = service.rows[5].created_at - timedelta(microseconds=1)  # rows 0-4 match
    matching = [row.id for row in service.rows if row.created_at <= end][::-1]
    service_fetch = service.fetch

    async def fetch(limit: int, offset: int, before: datetime | None) -> list[Row]:
        return await service_fetch(limit, offset, end if before is None else before)

    walked = [row.id async for row in walk_by_time(fetch, 2, end)]
    assert walked == matching
    assert all(before is None or before <= end for _, _, before in service.calls)


async def test_offset_walk_drops_rows_met_again() -> None:
    rows = [Row(f"a{i}", T0) for i in range(5)]
    pages = {0: rows[:2], 2: [rows[1], rows[2]], 4: [rows[3], rows[4]], 6: []}

    async def fetch(limit: int, offset: int) -> list[Row]:
        return pages[offset]

    assert [row.id async for row in walk_by_offset(fetch, 2)] == ["a0", "a1", "a2", "a3", "a4"]


def test_end_instant_reads_the_filter_as_the_service_does() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert end_instant(None, None) is None
    assert end_instant(date(2026, 6, 9), None) == datetime(2026, 6, 9, 23, 59, 59, 999999, UTC)
    assert end_instant("2026-06-09", "Europe/Paris") == datetime(
        2026, 6, 9, 23, 59, 59, 999999, paris
    )
    assert end_instant(datetime(2026, 6, 9, 12), "Europe/Paris") == datetime(
        2026, 6, 9, 12, tzinfo=paris
    )
    aware = datetime(2026, 6, 9, 12, tzinfo=UTC)
    assert end_instant(aware, "Europe/Paris") == aware
    assert end_instant("2026-06-09T12:00:00+02:00", None) == datetime(2026, 6, 9, 10, tzinfo=UTC)
    assert end_instant("yesterday", None) is None
    assert end_instant("2026-06-09", "Mars/Olympus") is None
