"""Per-conversation state: the dict a handler sees as ``ctx.state``.

The bot loads a conversation's state when a handler first reads ``ctx.state`` (or, for a
store that can only load by awaiting, before the first handler is tried) and saves it after
the handler if it changed, so a handler that never touches ``ctx.state`` costs no load.
Values must be JSON-serializable, so the same state works in memory, in SQLite and in later
engines. Handlers of one conversation never run at the same time (see ``imbot.bot.dispatch``),
so a load-modify-save needs no lock. A shared store (Redis) also checks, when saving, that
nobody saved since the load (``VersionedStateStore``): should two processes ever run one
conversation, the later save fails with ``StateConflict`` and its event runs again.

This module holds the semantics; the ``StateStore`` protocol is in ``imbot.storage.base``
and the engines beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeGuard

from imbot.storage.base import InstantStateStore, StateStore, VersionedStateStore
from imbot.storage.urls import open_state_store as _open

__all__ = [
    "ConversationState",
    "InstantStateStore",
    "StateStore",
    "load_state",
    "load_state_nowait",
    "open_state_store",
]


def _encode(data: Any) -> str:
    # Sorted keys and no spaces: equal states encode equally, so "changed?" is a string compare.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


_VERSIONED: dict[type, bool] = {}


def _versioned(store: StateStore) -> TypeGuard[VersionedStateStore]:
    # A Protocol isinstance walks every method: asked once per store class, not per event.
    kind = type(store)
    known = _VERSIONED.get(kind)
    if known is None:
        known = _VERSIONED[kind] = isinstance(store, VersionedStateStore)
    return known


def _check_value(key: str, value: Any) -> None:
    try:
        _encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"ctx.state[{key!r}] must be JSON-serializable (str, int, float, bool, None, "
            f"list, dict with str keys), got {type(value).__name__}: {exc}. "
            "Store an id or a plain dict instead, e.g. model.model_dump(mode='json')."
        ) from None


class ConversationState(MutableMapping[str, Any]):
    """A conversation's state: a dict of JSON values that knows whether it changed.

    Example:
        >>> state = await load_state(store, conversation_id)
        >>> state["visits"] = state.get("visits", 0) + 1
        >>> state.dirty
        True
        >>> await state.save()

    Changes inside nested values (``state["items"].append(x)``) are noticed too: ``dirty``
    compares the current JSON encoding with the one loaded.

    Attributes:
        conversation_id: the conversation this state belongs to.
    """

    __slots__ = ("_data", "_flag", "_snapshot", "_store", "_version", "conversation_id")

    def __init__(
        self,
        conversation_id: str,
        data: dict[str, Any] | None = None,
        *,
        store: StateStore | None = None,
        version: int | None = None,
    ) -> None:
        """Wrap loaded data.

        Args:
            conversation_id: the conversation.
            data: the saved state, if any; it is taken as clean (not dirty).
            store: where ``save`` writes; ``None`` for a state that is never persisted.
            version: the stored version ``data`` was loaded at, for a store that checks it
                (``VersionedStateStore``); ``None`` saves whatever is stored.
        """
        self.conversation_id = conversation_id
        self._data: dict[str, Any] = dict(data) if data else {}
        self._store = store
        self._version = version
        self._snapshot = _encode(self._data) if self._data else "{}"
        self._flag = False

    @property
    def dirty(self) -> bool:
        """Whether the state differs from what was last loaded or saved."""
        if self._flag:
            return True
        if not self._data:
            # Most handlers never touch the state: answer without encoding anything.
            return self._snapshot != "{}"
        try:
            return _encode(self._data) != self._snapshot
        except (TypeError, ValueError):
            return True  # a non-JSON value was put inside a nested container

    @dirty.setter
    def dirty(self, value: bool) -> None:
        if value:
            self._flag = True
        else:
            self._flag = False
            self._snapshot = _encode(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ctx.state keys must be str, got {type(key).__name__}")
        _check_value(key, value)
        self._data[key] = value
        self._flag = True

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._flag = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        return f"ConversationState({self.conversation_id!r}, {self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy of the state as plain JSON values."""
        loaded: dict[str, Any] = json.loads(_encode(self._data))
        return loaded

    async def save(self) -> None:
        """Persist the state now if it changed; an emptied state is deleted from the store.

        Raises:
            TypeError: a nested value is not JSON-serializable.
        """
        if not self._flag and not self._data and self._snapshot == "{}":
            return  # untouched and empty: the common case, nothing to encode or write
        try:
            encoded = _encode(self._data)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"the state of conversation {self.conversation_id} holds a value that is not "
                f"JSON-serializable: {exc}"
            ) from None
        if not self._flag and encoded == self._snapshot:
            return
        store = self._store
        if store is not None:
            if self._version is not None and _versioned(store):
                # A shared store: refused (StateConflict) if someone saved since the load.
                data = json.loads(encoded) if self._data else {}
                self._version = await store.save_versioned(
                    self.conversation_id, data, self._version
                )
            elif self._data:
                await store.save(self.conversation_id, json.loads(encoded))
            else:
                await store.delete(self.conversation_id)
        self._snapshot = encoded
        self._flag = False


async def load_state(store: StateStore, conversation_id: str) -> ConversationState:
    """Load a conversation's state from a store (empty when nothing was saved).

    Args:
        store: the engine.
        conversation_id: the conversation.
    """
    if _versioned(store):
        data, version = await store.load_versioned(conversation_id)
        return ConversationState(conversation_id, data, store=store, version=version)
    return ConversationState(conversation_id, await store.load(conversation_id), store=store)


def load_state_nowait(store: InstantStateStore, conversation_id: str) -> ConversationState:
    """Load a conversation's state from a store that reads without awaiting.

    Args:
        store: the engine.
        conversation_id: the conversation.
    """
    return ConversationState(conversation_id, store.load_nowait(conversation_id), store=store)


def open_state_store(url: str | None = None) -> StateStore:
    """Open the state engine a storage URL names.

    Args:
        url: ``None`` or ``"memory://"`` for the in-process engine; ``"sqlite:///path/to.db"``
            for SQLite (the same file can hold the inbox).

    Raises:
        ConfigError: the URL's scheme is not supported or the URL is malformed.
    """

    return _open(url)
