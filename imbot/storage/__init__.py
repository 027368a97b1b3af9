"""Storage engines for the inbox and conversation state, chosen by URL.

``base`` holds the protocols, ``memory`` and ``sqlite`` the engines, ``urls`` the URL that
chooses one (``None``/``"memory://"`` or ``"sqlite:///bot.db"``).
"""

from imbot.storage.base import InboxStore, InstantStateStore, PendingEvent, StateStore
from imbot.storage.memory import MemoryInboxStore, MemoryStateStore
from imbot.storage.sqlite import SqliteInboxStore, SqliteStateStore
from imbot.storage.urls import StorageURL, open_inbox_store, open_state_store, parse_storage_url

__all__ = [
    "InboxStore",
    "InstantStateStore",
    "MemoryInboxStore",
    "MemoryStateStore",
    "PendingEvent",
    "SqliteInboxStore",
    "SqliteStateStore",
    "StateStore",
    "StorageURL",
    "open_inbox_store",
    "open_state_store",
    "parse_storage_url",
]
