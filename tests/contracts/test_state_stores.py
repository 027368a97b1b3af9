"""One contract every state engine keeps: a JSON object per conversation, nothing for empty.

Memory, SQLite and Redis (a real ``redis-server``) run the same tests; the versioned saves
that keep a shared store free of lost updates are checked for Redis, the engine that has them.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from imbot.bot.state import load_state
from imbot.errors import StateConflict
from imbot.storage import (
    MemoryStateStore,
    SqliteStateStore,
    StateStore,
    open_state_store,
)
from imbot.storage.base import VersionedStateStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[StateStore]:
    engine: StateStore
    if request.param == "memory":
        engine = MemoryStateStore()
    elif request.param == "sqlite":
        engine = SqliteStateStore(str(tmp_path / "x.db"))
    else:
        engine = open_state_store(request.getfixturevalue("redis_url"))
    try:
        yield engine
    finally:
        await engine.close()


async def test_save_load_delete(store: StateStore) -> None:
    assert await store.load("c1") is None
    await store.save("c1", {"n": 1, "items": ["a", {"b": None}]})
    await store.save("c2", {"n": 2})
    assert await store.load("c1") == {"n": 1, "items": ["a", {"b": None}]}
    await store.save("c1", {"n": 3})
    assert await store.load("c1") == {"n": 3}
    await store.delete("c1")
    await store.delete("c1")  # no error when there is nothing
    assert await store.load("c1") is None
    assert await store.load("c2") == {"n": 2}


async def test_an_empty_state_keeps_nothing(store: StateStore) -> None:
    await store.save("c1", {"n": 1})
    await store.save("c1", {})
    assert await store.load("c1") is None


async def test_loads_are_copies(store: StateStore) -> None:
    await store.save("c1", {"items": [1]})
    loaded = await store.load("c1")
    assert loaded is not None
    loaded["items"].append(2)
    assert await store.load("c1") == {"items": [1]}


async def test_conversation_state_round_trip(store: StateStore) -> None:
    state = await load_state(store, "c1")
    state["visits"] = 1
    await state.save()
    again = await load_state(store, "c1")
    again["visits"] += 1
    await again.save()
    assert await store.load("c1") == {"visits": 2}


async def test_a_shared_store_refuses_a_save_over_a_newer_state(redis_url: str) -> None:
    store = open_state_store(redis_url)
    try:
        assert isinstance(store, VersionedStateStore)
        first = await load_state(store, "c1")
        second = await load_state(store, "c1")
        first["n"] = 1
        await first.save()
        second["n"] = 100
        with pytest.raises(StateConflict):
            await second.save()  # it read the state before `first` saved: no lost update
        assert await store.load("c1") == {"n": 1}
        third = await load_state(store, "c1")
        third["n"] += 1
        await third.save()
        third["n"] += 1
        await third.save()  # its own saves move its version on
        assert await store.load("c1") == {"n": 3}
        third.clear()
        await third.save()
        assert await store.load("c1") is None
    finally:
        await store.close()
