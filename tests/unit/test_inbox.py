"""The inbox: dedupe, pending events, the memory engine and storage URLs."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from imbot.bot.inbox import Inbox, InboxStore, PendingEvent, open_inbox
from imbot.errors import ConfigError
from imbot.storage import (
    MemoryInboxStore,
    SqliteInboxStore,
    StorageURL,
    parse_storage_url,
)


async def test_a_repeated_id_is_a_duplicate() -> None:
    inbox = open_inbox(None)
    with anyio.fail_after(5):
        assert await inbox.accept("evt_1", b"one") is True
        assert await inbox.accept("evt_1", b"one again") is False
        assert await inbox.accept("evt_2", b"two") is True
        # Still a duplicate after it was handled: the id outlives the body.
        await inbox.complete("evt_1")
        assert await inbox.accept("evt_1", b"one") is False
        await inbox.close()


async def test_pending_lists_unhandled_events_oldest_first() -> None:
    inbox = open_inbox("memory://")
    with anyio.fail_after(5):
        for i in range(5):
            await inbox.accept(f"evt_{i}", f"body {i}".encode())
        await inbox.complete("evt_1")
        await inbox.complete("evt_3")
        await inbox.complete("evt_unknown")  # completing an unknown id is harmless
        assert await inbox.pending() == [
            PendingEvent("evt_0", b"body 0"),
            PendingEvent("evt_2", b"body 2"),
            PendingEvent("evt_4", b"body 4"),
        ]
        await inbox.close()


async def test_memory_window_is_bounded_and_forgets_oldest_first() -> None:
    store = MemoryInboxStore(window=3)
    inbox = Inbox(store)
    with anyio.fail_after(5):
        for i in range(4):
            assert await inbox.accept(f"evt_{i}", b"")
            await inbox.complete(f"evt_{i}")
        assert len(store) == 3
        # evt_0 fell out of the window, so a redelivery is accepted again; the newer are not.
        assert await inbox.accept("evt_0", b"") is True
        assert await inbox.accept("evt_3", b"") is False


async def test_memory_window_never_forgets_a_pending_event() -> None:
    inbox = Inbox(MemoryInboxStore(window=2))
    with anyio.fail_after(5):
        await inbox.accept("evt_slow", b"still running")
        for i in range(5):
            await inbox.accept(f"evt_{i}", b"")
            await inbox.complete(f"evt_{i}")
        assert await inbox.accept("evt_slow", b"redelivered") is False
        assert await inbox.pending() == [PendingEvent("evt_slow", b"still running")]


def test_memory_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MemoryInboxStore(window=0)


async def test_durable_follows_the_engine(tmp_path: Path) -> None:
    memory = open_inbox(None)
    sqlite = open_inbox(f"sqlite:///{tmp_path}/bot.db")
    try:
        assert memory.durable is False
        assert sqlite.durable is True
        assert isinstance(sqlite.store, SqliteInboxStore)
        assert isinstance(memory.store, InboxStore)
        assert Inbox(MemoryInboxStore(), durable=True).durable is True
    finally:
        with anyio.fail_after(5):
            await sqlite.close()
            await memory.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, StorageURL("memory")),
        ("memory://", StorageURL("memory")),
        ("sqlite://", StorageURL("sqlite", ":memory:")),
        ("sqlite:///:memory:", StorageURL("sqlite", ":memory:")),
        ("sqlite:///bot.db", StorageURL("sqlite", "bot.db")),
        ("sqlite:///data/bot.db", StorageURL("sqlite", "data/bot.db")),
        ("sqlite:////var/lib/bot.db", StorageURL("sqlite", "/var/lib/bot.db")),
        ("sqlite:///my%20bot.db", StorageURL("sqlite", "my bot.db")),
        ("sqlite:///bot.db?synchronous=full", StorageURL("sqlite", "bot.db", "full")),
        ("sqlite:///bot.db?synchronous=NORMAL", StorageURL("sqlite", "bot.db", "normal")),
    ],
)
def test_storage_urls(url: str | None, expected: StorageURL) -> None:
    assert parse_storage_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mongodb://localhost", "not supported"),
        ("bot.db", "no scheme"),
        ("sqlite:///bot.db?journal=off", "unknown option"),
        ("sqlite:///bot.db?synchronous=off", "unknown option"),
        ("sqlite://host/bot.db", "host part"),
        ("memory://x", "no path"),
    ],
)
def test_bad_storage_urls_raise_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_inbox(url)


def test_an_unopenable_sqlite_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open the SQLite inbox"):
        open_inbox(f"sqlite:///{tmp_path}/missing-dir/bot.db")
