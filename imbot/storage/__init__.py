"""Storage engines for the inbox and conversation state, chosen by URL.

``base`` holds the protocols, ``memory`` and ``sqlite`` the engines, ``urls`` the URL that
chooses one (``None``/``"memory://"``, ``"sqlite:///bot.db"`` or ``"redis://host:6379/0"``).
The Redis engine, shared by several processes, is ``redis_inbox`` and ``redis_state`` over
``redis_conn`` (the URL's server, errors), ``redis_wire`` (the pipelined connection),
``redis_scripts`` (the Lua) and ``redis_lanes`` (leased conversations, for the bot's cluster).
The Redis names load on first use: a bot that never opens a ``redis://`` URL does not pay
for importing them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from imbot.storage.base import (
    InboxStore,
    InstantStateStore,
    PendingEvent,
    StateStore,
    VersionedStateStore,
)
from imbot.storage.memory import MemoryInboxStore, MemoryStateStore
from imbot.storage.sqlite import SqliteInboxStore, SqliteStateStore
from imbot.storage.urls import StorageURL, open_inbox_store, open_state_store, parse_storage_url

if TYPE_CHECKING:
    from imbot.storage.redis_inbox import RedisInboxStore
    from imbot.storage.redis_state import RedisStateStore

_LAZY = {
    "RedisInboxStore": "imbot.storage.redis_inbox",
    "RedisStateStore": "imbot.storage.redis_state",
}

__all__ = [
    "InboxStore",
    "InstantStateStore",
    "MemoryInboxStore",
    "MemoryStateStore",
    "PendingEvent",
    "RedisInboxStore",
    "RedisStateStore",
    "SqliteInboxStore",
    "SqliteStateStore",
    "StateStore",
    "StorageURL",
    "VersionedStateStore",
    "open_inbox_store",
    "open_state_store",
    "parse_storage_url",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
