"""Conversation state: the mapping, dirty tracking, JSON values and the memory engine."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc
from typing import Any

import anyio
import pytest

from imbot.bot.state import ConversationState, StateStore, load_state, open_state_store
from imbot.storage import MemoryStateStore


class SpyStore(MemoryStateStore):
    """The memory engine, counting writes."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self.deletes = 0

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        self.saves += 1
        await super().save(conversation_id, data)

    async def delete(self, conversation_id: str) -> None:
        self.deletes += 1
        await super().delete(conversation_id)


async def test_round_trip_through_the_memory_store() -> None:
    store = open_state_store(None)
    assert isinstance(store, StateStore)
    with anyio.fail_after(5):
        state = await load_state(store, "conv-1")
        assert dict(state) == {}
        state["name"] = "Dana"
        state["visits"] = 2
        state["tags"] = ["a", {"b": None}]
        await state.save()
        again = await load_state(store, "conv-1")
        assert dict(again) == {"name": "Dana", "visits": 2, "tags": ["a", {"b": None}]}
        assert again.conversation_id == "conv-1"
        assert (await load_state(store, "conv-2")) == {}


async def test_loads_are_independent_copies() -> None:
    store = MemoryStateStore()
    with anyio.fail_after(5):
        state = await load_state(store, "c")
        state["items"] = [1]
        await state.save()
        first = await load_state(store, "c")
        first["items"].append(2)  # not saved
        second = await load_state(store, "c")
        assert second["items"] == [1]


async def test_dirty_tracks_sets_deletes_and_nested_changes() -> None:
    store = SpyStore()
    await store.save("c", {"items": [1], "n": 1})
    with anyio.fail_after(5):
        state = await load_state(store, "c")
        assert state.dirty is False
        await state.save()
        assert store.saves == 1  # the setup save only: a clean state writes nothing

        state["n"] = 2
        assert state.dirty is True
        await state.save()
        assert state.dirty is False
        assert store.saves == 2

        state["items"].append(2)  # a nested change, made without __setitem__
        assert state.dirty is True
        await state.save()
        assert (await store.load("c")) == {"items": [1, 2], "n": 2}

        state["n"] = 2  # same value: flagged, written once more, harmless
        del state["items"]
        assert state.dirty is True
        await state.save()
        assert (await store.load("c")) == {"n": 2}


async def test_dirty_can_be_set_and_cleared_by_hand() -> None:
    state = ConversationState("c", {"a": 1})
    state.dirty = True
    assert state.dirty
    state["a"] = 5
    state.dirty = False  # accept the current content as saved
    assert not state.dirty


async def test_an_emptied_state_is_deleted_not_saved() -> None:
    store = SpyStore()
    with anyio.fail_after(5):
        state = await load_state(store, "c")
        state["x"] = 1
        await state.save()
        state.clear()
        await state.save()
        assert store.deletes == 1
        assert len(store) == 0
        assert await store.load("c") is None


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, dt.datetime(2026, 1, 1), b"bytes", float("nan"), {"nested": object()}],
    ids=["object", "set", "datetime", "bytes", "nan", "nested"],
)
def test_non_json_values_are_refused_with_a_clear_error(value: Any) -> None:
    state = ConversationState("c")
    with pytest.raises(TypeError, match=r"ctx.state\['when'\] must be JSON-serializable"):
        state["when"] = value
    assert "when" not in state
    assert not state.dirty


def test_non_string_keys_are_refused() -> None:
    state = ConversationState("c")
    with pytest.raises(TypeError, match="keys must be str"):
        state[1] = "x"  # type: ignore[index]


async def test_a_non_json_value_hidden_in_a_container_fails_at_save() -> None:
    state = ConversationState("c", store=MemoryStateStore())
    state["items"] = []
    state["items"].append(object())
    assert state.dirty
    with anyio.fail_after(5), pytest.raises(TypeError, match="not JSON-serializable"):
        await state.save()


async def test_mapping_behaviour() -> None:
    state = ConversationState("c", {"a": 1, "b": 2})
    assert len(state) == 2
    assert sorted(state) == ["a", "b"]
    assert state.get("missing", 0) == 0
    assert "a" in state
    assert state.to_dict() == {"a": 1, "b": 2}
    copy = state.to_dict()
    copy["a"] = 99
    assert state["a"] == 1
    state.update(c=3)
    assert state.setdefault("d", 4) == 4
    assert "ConversationState('c'" in repr(state)
    with pytest.raises(KeyError):
        state["missing"]
    # A state without a store saves nowhere but still tracks changes.
    await state.save()
    assert not state.dirty


async def test_memory_store_keeps_nothing_for_empty_states() -> None:
    conversations = 20_000
    store = MemoryStateStore()
    ids = [f"conversation-{i:05d}" for i in range(conversations)]
    with anyio.fail_after(30):
        gc.collect()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            for conversation_id in ids:
                state = await load_state(store, conversation_id)
                state["step"] = "ask"
                await state.save()
                del state["step"]
                await state.save()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
    assert len(store) == 0
    assert grown / conversations <= 1024
