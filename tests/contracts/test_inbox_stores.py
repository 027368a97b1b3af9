"""One contract every inbox engine keeps: dedupe, pending, retries, dead letters, requeue.

Memory, SQLite and Redis (a real ``redis-server``) run the same tests.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import AsyncIterator

import pytest

from imbot.storage import (
    InboxStore,
    MemoryInboxStore,
    SqliteInboxStore,
    open_inbox_store,
    sqlite_engine,
)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[InboxStore]:
    engine: InboxStore
    if request.param == "memory":
        engine = MemoryInboxStore()
    elif request.param == "sqlite":
        engine = SqliteInboxStore(str(tmp_path / "x.db"))
    else:
        engine = open_inbox_store(request.getfixturevalue("redis_url"))
    try:
        yield engine
    finally:
        await engine.close()


async def test_dedupe_and_pending_in_arrival_order(store: InboxStore) -> None:
    assert await store.add("evt_1", b"one")
    assert await store.add("evt_2", b"two")
    assert not await store.add("evt_1", b"one again")
    assert [(p.event_id, p.raw, p.starts) for p in await store.pending()] == [
        ("evt_1", b"one", 0),
        ("evt_2", b"two", 0),
    ]
    await store.complete("evt_1")
    assert [p.event_id for p in await store.pending()] == ["evt_2"]
    assert not await store.add("evt_1", b"one, later")  # completed ids stay for dedupe


async def test_starts_count_until_a_failure_resets_them(store: InboxStore) -> None:
    await store.add("evt_1", b"one")
    assert await store.started("evt_1") == 1
    assert await store.started("evt_1") == 2
    first = await store.failed("evt_1", "ConnectError: refused")
    assert await store.failed("evt_1", "ServerError: 502") == first  # the first failure stays
    [item] = await store.pending()
    assert (item.starts, item.first_failed_at) == (0, first)
    assert await store.started("evt_1") == 1


async def test_dead_letters_leave_pending_and_come_back_on_requeue(store: InboxStore) -> None:
    for event_id in ("evt_1", "evt_2"):
        await store.add(event_id, event_id.encode())
    await store.failed("evt_1", "ConnectError: refused")
    await store.dead_letter("evt_1", reason="deadline", error="ConnectError: refused", attempts=9)
    assert [p.event_id for p in await store.pending()] == ["evt_2"]
    [letter] = await store.dead_letters()
    assert (letter.event_id, letter.raw, letter.reason, letter.attempts) == (
        "evt_1",
        b"evt_1",
        "deadline",
        9,
    )
    assert letter.error == "ConnectError: refused" and letter.first_failed_at is not None
    assert not await store.add("evt_1", b"redelivered")  # still a known id
    requeued = await store.requeue("evt_1")
    assert requeued is not None and (requeued.event_id, requeued.raw) == ("evt_1", b"evt_1")
    assert await store.requeue("evt_1") is None
    assert await store.dead_letters() == []
    assert sorted(p.event_id for p in await store.pending()) == ["evt_1", "evt_2"]


async def test_a_schema_1_file_migrates_and_keeps_its_pending_events(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sqlite_engine._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO inbox_seen (seq, event_id, accepted_at) VALUES (1, 'evt_old', 0)")
    conn.execute("INSERT INTO inbox_pending (seq, raw) VALUES (1, x'7b7d')")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = SqliteInboxStore(str(path))
    try:
        [item] = await store.pending()
        assert (item.event_id, item.raw, item.starts, item.first_failed_at) == (
            "evt_old",
            b"{}",
            0,
            None,
        )
        assert await store.started("evt_old") == 1
    finally:
        await store.close()
