"""SQLite persistence for the simulator: one connection, the schema in one place.

Every call runs on the event loop's thread. SQLite in WAL mode answers in microseconds,
so handing each statement to a worker thread would cost more than it saves, and keeping
every change on one thread makes each service call atomic with respect to the others (no
``await`` inside a transaction).

Durability: ``synchronous=OFF``. Every commit is written to the file before the request
is answered, so the data survives the simulator stopping or crashing, which is what a
local simulator needs; only a power cut or a kernel crash can lose the last writes. With
``NORMAL`` the fsyncs of each automatic WAL checkpoint ran on the event loop, stalling it
for milliseconds every few dozen sends: half of the store's time under load.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imbot.errors import SetupError

__all__ = ["SCHEMA_VERSION", "Row", "Store"]

Row = sqlite3.Row

SCHEMA_VERSION = "1"

# Times are ISO 8601 UTC strings with microseconds, so they sort as text.
# `seq` columns give a stable insertion order where two rows share a stamp.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    handle TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    imessage_enabled INTEGER NOT NULL DEFAULT 0,
    filter_mode TEXT NOT NULL DEFAULT 'blacklist',
    contact_sharing_enabled INTEGER NOT NULL DEFAULT 1,
    signing_key TEXT,
    signing_key_created_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS identities_handle ON identities(lower(handle));
CREATE TABLE IF NOT EXISTS api_keys (
    key TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    identity_id TEXT,
    label TEXT,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS phones (
    number TEXT PRIMARY KEY,
    unreachable INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    created_at TEXT NOT NULL,
    delivery TEXT NOT NULL DEFAULT 'imessage',
    contact_id TEXT,
    contact_name TEXT,
    memories TEXT,
    agent_handle TEXT
);
CREATE TABLE IF NOT EXISTS assignments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    identity_id TEXT NOT NULL,
    remote_number TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX IF NOT EXISTS assignments_pair ON assignments(identity_id, remote_number, status);
CREATE TABLE IF NOT EXISTS conversations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    identity_id TEXT NOT NULL,
    remote_number TEXT NOT NULL,
    assignment_id TEXT,
    assignment_status TEXT,
    last_activity_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (identity_id, remote_number)
);
CREATE INDEX IF NOT EXISTS conversations_number ON conversations(remote_number);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    assignment_id TEXT,
    direction TEXT NOT NULL,
    remote_number TEXT NOT NULL,
    content TEXT,
    media TEXT,
    send_style TEXT,
    service TEXT NOT NULL DEFAULT 'imessage',
    status TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    error_reason TEXT,
    error_detail TEXT,
    is_read INTEGER NOT NULL DEFAULT 0,
    is_blocked INTEGER NOT NULL DEFAULT 0,
    via_router INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    delivered_at TEXT,
    failed_at TEXT,
    reply_to_message_id TEXT,
    thread_id TEXT,
    thread_root_message_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, seq);
CREATE INDEX IF NOT EXISTS messages_identity ON messages(identity_id, seq);
CREATE INDEX IF NOT EXISTS messages_thread ON messages(thread_id, seq);
CREATE INDEX IF NOT EXISTS messages_in_flight ON messages(status)
    WHERE direction = 'outbound' AND status IN ('queued', 'sent');
CREATE TABLE IF NOT EXISTS reactions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    assignment_id TEXT,
    direction TEXT NOT NULL,
    reaction TEXT NOT NULL,
    custom_emoji TEXT,
    remote_number TEXT NOT NULL,
    part_index INTEGER NOT NULL DEFAULT 0,
    removed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reactions_message ON reactions(message_id, seq);
CREATE TABLE IF NOT EXISTS contact_rules (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    identity_id TEXT NOT NULL,
    action TEXT NOT NULL,
    match_type TEXT NOT NULL,
    match_target TEXT NOT NULL,
    status TEXT NOT NULL,
    direction TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_rules_target ON contact_rules(identity_id, match_target);
CREATE TABLE IF NOT EXISTS idempotency (
    identity_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    message_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (identity_id, key)
);
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    identity_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    auth_token TEXT,
    context_config TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    conversation_id TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    lane TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    error_detail TEXT,
    duration_ms INTEGER,
    success INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    is_replay INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_subscription ON deliveries(subscription_id, seq);
CREATE TABLE IF NOT EXISTS phone_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    number TEXT NOT NULL,
    thread TEXT NOT NULL,
    conversation_id TEXT,
    sender TEXT NOT NULL,
    text TEXT,
    media TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS phone_items_number ON phone_items(number, seq);
"""

_ADDED_COLUMNS = {
    "phones": (
        ("delivery", "TEXT NOT NULL DEFAULT 'imessage'"),
        ("contact_id", "TEXT"),
        ("contact_name", "TEXT"),
        ("memories", "TEXT"),
        ("agent_handle", "TEXT"),
    ),
}

# Tables a snapshot covers, in a fixed order (tests compare snapshots before and after
# a refused request to prove it changed nothing).
TABLES = (
    "settings",
    "identities",
    "api_keys",
    "phones",
    "assignments",
    "conversations",
    "messages",
    "reactions",
    "contact_rules",
    "idempotency",
    "media",
    "subscriptions",
    "events",
    "outbox",
    "deliveries",
    "phone_items",
)


def _private_file(path: str) -> None:
    """Create the database file owner-only (0600), in an owner-only folder if new (0700).

    The file holds the admin key, identity keys and signing keys in plain text. SQLite
    gives its ``-wal`` and ``-shm`` files the database file's mode, so creating the file
    first, before SQLite does with the umask's mode, covers them too. A file left readable
    by an older run is narrowed; an existing folder is left as it is (it may be the
    project's own).
    """
    folder = Path(path).parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):  # SQLite reports an unusable path in its own words
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(OSError):  # absent, or another user's file: leave it
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


class Store:
    """The simulator's SQLite database.

    Args:
        path: a file path (its folder is created) or ``":memory:"``.

    Raises:
        SetupError: when the file holds another schema version.
    """

    def __init__(self, path: str) -> None:
        if path not in (":memory:", ""):
            _private_file(path)
        # Autocommit mode (isolation_level=None): transactions are opened explicitly by
        # `transaction()`, so a single statement never holds a lock longer than it runs.
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        self._db.row_factory = sqlite3.Row
        self._depth = 0
        self.rollback_listeners: list[Callable[[], None]] = []
        """Called after a transaction rolls back (in-memory caches drop what it wrote)."""
        # One process owns the file: holding the lock spares several system calls per
        # transaction (and keeps the WAL index in memory); other processes cannot open
        # the database while the simulator runs.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # see the module docstring
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._migrate()

    def _migrate(self) -> None:
        self._db.executescript(_SCHEMA)
        # Columns added within schema version 1: a file from before them gets them empty.
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        stored = self.setting("schema_version")
        if stored is None:
            self.set_setting("schema_version", SCHEMA_VERSION)
        elif stored != SCHEMA_VERSION:
            raise SetupError(
                f"the simulator database has schema version {stored}, this imbot needs "
                f"{SCHEMA_VERSION}; delete the file or pass another --db"
            )

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction: all of it is stored, or none of it.

        Nested blocks join the outer transaction.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            for listener in self.rollback_listeners:
                listener()
            raise
        self._depth = 0
        self._db.execute("COMMIT")

    def run(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Execute one statement; return the number of rows it changed."""
        return self._db.execute(sql, params).rowcount

    def one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None:
        """Return the first row of a query, or ``None``."""
        row: Row | None = self._db.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Return every row of a query."""
        return self._db.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """Return the first column of the first row, or ``None``."""
        row = self._db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def insert(self, table: str, values: Mapping[str, Any]) -> int:
        """Insert one row and return its rowid.

        ``table`` and the column names come from code, never from input.
        """
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self._db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values())
        )
        return cursor.lastrowid or 0

    def insert_returning(self, table: str, values: Mapping[str, Any]) -> Row:
        """Insert one row and return it whole, defaults included (one statement)."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        # fetchall, not fetchone: it finishes the statement, which COMMIT needs.
        rows: list[Row] = self._db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING *",
            tuple(values.values()),
        ).fetchall()
        return rows[0]

    def update_returning(self, table: str, row_id: str, values: Mapping[str, Any]) -> Row | None:
        """Update the row whose ``id`` is ``row_id``; return it as updated, or ``None``."""
        sets = ", ".join(f"{column} = ?" for column in values)
        rows: list[Row] = self._db.execute(
            f"UPDATE {table} SET {sets} WHERE id = ? RETURNING *", (*values.values(), row_id)
        ).fetchall()
        return rows[0] if rows else None

    def update(self, table: str, row_id: str, values: Mapping[str, Any]) -> int:
        """Update the row whose ``id`` is ``row_id``; return the number of rows changed."""
        sets = ", ".join(f"{column} = ?" for column in values)
        cursor = self._db.execute(
            f"UPDATE {table} SET {sets} WHERE id = ?", (*values.values(), row_id)
        )
        return cursor.rowcount

    def setting(self, key: str) -> str | None:
        """Return a stored setting, or ``None``."""
        value = self.scalar("SELECT value FROM settings WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting, replacing any previous value."""
        self.run(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Return every row of every table, for tests that prove nothing changed."""
        return {
            table: [tuple(row) for row in self.all(f"SELECT * FROM {table} ORDER BY rowid")]
            for table in TABLES
        }
