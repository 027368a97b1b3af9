"""The SQLite engine under both stores: one connection, migrations, group commit, checkpoints.

One file can hold both engines' tables; the schema and its migrations live in ``_MIGRATIONS``
below and are applied by whichever engine opens the file first (``PRAGMA user_version``).

Durability. The file runs in WAL mode. With the default ``synchronous=NORMAL`` a commit is
a ``write()`` into the WAL, which the OS keeps even if the process is killed (``kill -9``,
OOM, a crash): an event ``add`` returned for is in the file after a restart. A power loss or
kernel panic can roll back the last commits; ``synchronous=FULL`` (``?synchronous=full`` in
the URL) fsyncs every commit to cover that too.

Speed. Every write goes through a group commit: the first writer waits one turn of the event
loop so that writers arriving meanwhile (other webhooks, finished handlers) join its
transaction, then commits them all at once. Under load that turns many small commits, each
rewriting whole pages into the WAL, into one. With ``NORMAL`` a commit takes tens of
microseconds and runs on the loop's thread: a worker-thread hop would cost more. The one
slow step, the WAL checkpoint (it fsyncs), runs in a worker thread on its own connection,
every few hundred writes, started from the handler side (``complete``, state saves) so that
the webhook's 200 never waits for it. With ``FULL`` every commit fsyncs, so commits run in
a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

__all__ = [
    "BUSY_TIMEOUT",
    "CHECKPOINT_EVERY",
    "PRUNE_CHUNK",
    "PRUNE_EVERY",
    "Engine",
    "Synchronous",
    "migrate",
]

Synchronous = Literal["normal", "full"]
_T = TypeVar("_T")

CHECKPOINT_EVERY = 512  # writes between WAL checkpoints (a write adds a page or a few)
PRUNE_EVERY = 128  # adds between prunes of the dedupe window
PRUNE_CHUNK = 256  # rows deleted per prune: keeps each prune well under a millisecond
BUSY_TIMEOUT = 5.0

# Migration n brings the file from user_version n-1 to n. Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # Every accepted id, oldest first by seq: the dedupe window.
        """CREATE TABLE IF NOT EXISTS inbox_seen (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            accepted_at REAL NOT NULL
        )""",
        # Bodies of accepted events not yet completed. Completing deletes one row here and
        # touches nothing else, which keeps the handler's write to a single page.
        """CREATE TABLE IF NOT EXISTS inbox_pending (
            seq INTEGER PRIMARY KEY,
            raw BLOB NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS state (
            conversation_id TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Retries and crash loops: starts after a restart without an outcome, and the first
        # transient failure (the retry deadline counts from it). NULL/0 on the hot path.
        "ALTER TABLE inbox_pending ADD COLUMN starts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE inbox_pending ADD COLUMN first_failed_at REAL",
        "ALTER TABLE inbox_pending ADD COLUMN last_error TEXT",
        # Events given up on, kept whole so they can be listed and replayed.
        """CREATE TABLE IF NOT EXISTS inbox_dead (
            event_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            raw BLOB NOT NULL,
            reason TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            first_failed_at REAL,
            dead_at REAL NOT NULL
        ) WITHOUT ROWID""",
    ),
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a database up to the current schema.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).

    Returns:
        The schema version after migrating.

    Raises:
        sqlite3.DatabaseError: the file was written by a newer imbot.
    """
    # IMMEDIATE takes the write lock first, so two engines opening one file never both migrate.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"the database has schema version {version}, newer than this imbot knows "
                f"({len(_MIGRATIONS)}); upgrade imbot or use another file"
            )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(_MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(_MIGRATIONS)


def _create_private(path: str) -> None:
    # The inbox holds message text: a new file is the owner's only (0600), whatever the
    # umask. SQLite gives the -wal and -shm files the database file's mode, so they follow.
    # An existing file keeps the mode its operator gave it.
    # Any other failure (no such folder, no permission) is left to SQLite to report as usual.
    if path not in (":memory:", ""):
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def _connect(path: str, synchronous: Synchronous, *, autocheckpoint: bool) -> sqlite3.Connection:
    _create_private(path)
    # Autocommit mode: transactions are explicit (BEGIN/COMMIT around a group) and never
    # left open across an await. check_same_thread is off: worker threads use it under a lock.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
    )
    try:
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class _Write(Generic[_T]):
    """One write waiting for its group's commit."""

    __slots__ = ("args", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.result: _T | None = None
        self.error: BaseException | None = None
        self.done: anyio.Event | None = None


def _fail(group: list[_Write[Any]], exc: BaseException | None) -> None:
    for write in group:
        if write.error is None:
            write.error = sqlite3.OperationalError(
                f"the group commit was interrupted ({exc!r}); the write may not be saved"
            )


def _release(group: list[_Write[Any]]) -> None:
    for write in group:
        if write.done is not None:
            write.done.set()


class Engine:
    """One connection, group commit, and off-loop checkpoints."""

    __slots__ = (
        "_checkpoint_lock",
        "_checkpointer",
        "_closed",
        "_conn",
        "_leading",
        "_lock",
        "_queue",
        "_threaded",
        "_writes",
        "path",
    )

    def __init__(self, path: str, synchronous: Synchronous) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = path
        # An in-memory database has nothing to fsync: FULL changes nothing there.
        self._threaded = synchronous == "full" and path != ":memory:"
        # In threaded mode commits run in worker threads, so autocheckpoints may stay on.
        self._conn = _connect(path, synchronous, autocheckpoint=self._threaded)
        self._lock = threading.Lock()  # one statement at a time in threaded mode
        self._checkpoint_lock = threading.Lock()
        self._queue: list[_Write[Any]] = []
        self._leading = False
        self._writes = 0
        self._closed = False
        # A second connection, only ever used in a worker thread, for WAL checkpoints.
        self._checkpointer: sqlite3.Connection | None = None
        if not self._threaded and path != ":memory:":
            self._checkpointer = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
            )

    def _check_open(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError(f"the SQLite store {self.path} is closed")

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        self._check_open()
        if self._threaded:
            return await anyio.to_thread.run_sync(self._locked, fn, *args)
        return fn(*args)

    def _locked(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            return fn(*args)

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        self._check_open()
        write: _Write[_T] = _Write(fn, args)
        self._queue.append(write)
        # Shielded: once queued, the write is committed whatever happens to the caller, so
        # the caller must see it through (an inbox add must not be committed yet unreported).
        with anyio.CancelScope(shield=True):
            if self._leading:
                write.done = anyio.Event()
                await write.done.wait()
            else:
                self._leading = True
                try:
                    await anyio.lowlevel.checkpoint()  # let writers ready now join this group
                    while self._queue:
                        group, self._queue = self._queue, []
                        try:
                            if self._threaded:
                                await anyio.to_thread.run_sync(self._locked, self._commit, group)
                            else:
                                self._commit(group)
                        except BaseException as exc:
                            _fail(group, exc)
                            raise
                        finally:
                            _release(group)
                finally:
                    self._leading = False
                    if self._queue:  # only after a failure: no leader is left to commit these
                        stranded, self._queue = self._queue, []
                        _fail(stranded, None)
                        _release(stranded)
        self._writes += 1
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]

    def _commit(self, group: list[_Write[Any]]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in group:
                try:
                    write.result = write.fn(*write.args)
                except Exception as exc:  # one bad write fails alone; the group commits
                    write.error = exc
            conn.execute("COMMIT")
        except BaseException as exc:
            # Never leave a transaction open: the next group's BEGIN would fail.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like: the caller fails the group
            for write in group:
                write.error = write.error or exc

    async def _maybe_checkpoint(self) -> None:
        if self._checkpointer is not None and self._writes >= CHECKPOINT_EVERY:
            self._writes = 0
            await anyio.to_thread.run_sync(self._checkpoint)

    def _checkpoint(self) -> None:
        if not self._checkpoint_lock.acquire(blocking=False):
            return  # a checkpoint is already running; it covers these writes too
        try:
            if self._checkpointer is not None and not self._closed:
                # PASSIVE never waits for the loop's writer, so the loop never waits for it.
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.OperationalError:
            pass  # busy: the next checkpoint catches up
        finally:
            self._checkpoint_lock.release()

    def _count(self, table: str) -> int:
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    async def close(self) -> None:
        """Close the connections (SQLite checkpoints the WAL as the last one closes)."""
        if self._closed:
            return
        await self._read(self._conn.close)
        self._closed = True
        if self._checkpointer is not None:
            await anyio.to_thread.run_sync(self._close_checkpointer)

    def _close_checkpointer(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
