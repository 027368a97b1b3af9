"""SQLite engines: a durable inbox and state store for one machine (stdlib ``sqlite3``).

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

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from imbot.storage.base import PendingEvent

__all__ = ["SqliteInboxStore", "SqliteStateStore", "migrate"]

Synchronous = Literal["normal", "full"]
_T = TypeVar("_T")

DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds an accepted event id is kept for dedupe."""
DEFAULT_MAX_IDS = 1_000_000
"""Most event ids kept for dedupe, whatever their age."""
_CHECKPOINT_EVERY = 512  # writes between WAL checkpoints (a write adds a page or a few)
_PRUNE_EVERY = 128  # adds between prunes of the dedupe window
_PRUNE_CHUNK = 256  # rows deleted per prune: keeps each prune well under a millisecond
_BUSY_TIMEOUT = 5.0

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


def _connect(path: str, synchronous: Synchronous, *, autocheckpoint: bool) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN/COMMIT around a group) and never
    # left open across an await. check_same_thread is off: worker threads use it under a lock.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
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


class _Engine:
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
                path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
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
        if self._checkpointer is not None and self._writes >= _CHECKPOINT_EVERY:
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


class SqliteInboxStore(_Engine):
    """A durable inbox: ``add`` returns only once the event is committed.

    Ids are kept for dedupe ``retention`` seconds after acceptance, and the newest
    ``max_ids`` at most; the id of an event still pending is never pruned.

    Attributes:
        durable: always ``True``.
        path: the database file.
    """

    durable = True

    __slots__ = ("_adds", "_clock", "_max_ids", "_retention")

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "normal",
        retention: float = DEFAULT_RETENTION,
        max_ids: int = DEFAULT_MAX_IDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (and create or migrate) the database.

        Args:
            path: the file, or ``":memory:"`` for a throwaway database.
            synchronous: ``"normal"`` (survives a process crash) or ``"full"`` (also a
                power loss; an fsync per commit).
            retention: seconds an accepted id is kept for dedupe.
            max_ids: most ids kept for dedupe.
            clock: the time source, in Unix seconds.
        """
        if max_ids < 1:
            raise ValueError(f"max_ids must be at least 1, got {max_ids}")
        super().__init__(path, synchronous)
        self._retention = retention
        self._max_ids = max_ids
        self._clock = clock
        self._adds = 0

    async def add(self, event_id: str, raw: bytes) -> bool:
        """Insert the event unless its id is known; committed before returning."""
        added = await self._write(self._add, event_id, raw)
        if self._writes >= 4 * _CHECKPOINT_EVERY:
            # Normally complete() checkpoints; this only catches a bot that never completes.
            await self._maybe_checkpoint()
        return added

    def _add(self, event_id: str, raw: bytes) -> bool:
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO inbox_seen (event_id, accepted_at) VALUES (?, ?)",
            (event_id, self._clock()),
        )
        if cur.rowcount != 1:
            return False
        seq = cur.lastrowid
        self._conn.execute("INSERT INTO inbox_pending (seq, raw) VALUES (?, ?)", (seq, raw))
        self._adds += 1
        if self._adds % _PRUNE_EVERY == 0 and seq is not None:
            self._prune(seq, _PRUNE_CHUNK)
        return True

    def _prune(self, last_seq: int, limit: int) -> None:
        # Oldest first by seq, which is also acceptance order; pending ids are kept.
        not_pending = "NOT EXISTS (SELECT 1 FROM inbox_pending p WHERE p.seq = s.seq)"
        self._conn.execute(
            "DELETE FROM inbox_seen WHERE seq IN (SELECT s.seq FROM inbox_seen s "
            f"WHERE s.seq <= ? AND {not_pending} ORDER BY s.seq LIMIT ?)",
            (last_seq - self._max_ids, limit),
        )
        # Age: look only at the oldest `limit` rows, so the scan stays bounded.
        self._conn.execute(
            "DELETE FROM inbox_seen WHERE seq IN (SELECT s.seq FROM (SELECT seq, accepted_at "
            "FROM inbox_seen ORDER BY seq LIMIT ?) s "
            f"WHERE s.accepted_at < ? AND {not_pending})",
            (limit, self._clock() - self._retention),
        )

    async def complete(self, event_id: str) -> None:
        """Drop the event's body; its id stays for dedupe."""
        await self._write(self._complete, event_id)
        await self._maybe_checkpoint()

    def _complete(self, event_id: str) -> None:
        self._conn.execute(
            "DELETE FROM inbox_pending WHERE seq = (SELECT seq FROM inbox_seen WHERE event_id = ?)",
            (event_id,),
        )

    async def pending(self) -> list[PendingEvent]:
        """Return the events accepted but not completed, oldest first."""
        return await self._read(self._pending)

    def _pending(self) -> list[PendingEvent]:
        rows = self._conn.execute(
            "SELECT s.event_id, p.raw FROM inbox_pending p JOIN inbox_seen s USING (seq) "
            "ORDER BY p.seq"
        ).fetchall()
        return [PendingEvent(event_id, bytes(raw)) for event_id, raw in rows]

    async def prune(self) -> None:
        """Apply the retention and size bounds now (they are also applied as events arrive)."""
        await self._write(self._prune_all)

    def _prune_all(self) -> None:
        last = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox_seen").fetchone()[0]
        self._prune(int(last), -1)  # LIMIT -1: no limit

    async def count(self) -> int:
        """Return how many event ids the window holds (pending ones included)."""
        return await self._read(self._count, "inbox_seen")


class SqliteStateStore(_Engine):
    """Conversation states as JSON text, one row per conversation with a non-empty state.

    Loads are one indexed ``SELECT`` on the event loop's thread (``load_nowait``), so
    ``ctx.state`` can load on first use. With ``synchronous=full`` the commits run in worker
    threads on the writing connection; loads then go through a second, read-only connection,
    which WAL lets read while a commit is being fsynced.

    Attributes:
        path: the database file.
    """

    __slots__ = ("_reader",)

    def __init__(self, path: str, *, synchronous: Synchronous = "normal") -> None:
        """Open (and create or migrate) the database.

        Args:
            path: the file, or ``":memory:"`` for a throwaway database.
            synchronous: ``"normal"`` or ``"full"``, as for ``SqliteInboxStore``.
        """
        super().__init__(path, synchronous)
        self._reader = self._conn
        if self._threaded:
            reader = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
            )
            reader.execute("PRAGMA query_only=ON")
            self._reader = reader

    async def load(self, conversation_id: str) -> dict[str, Any] | None:
        """Return the saved state, or ``None``."""
        return self.load_nowait(conversation_id)

    def load_nowait(self, conversation_id: str) -> dict[str, Any] | None:
        """Return the saved state, or ``None``, without awaiting (one indexed ``SELECT``)."""
        self._check_open()
        row = self._reader.execute(
            "SELECT data FROM state WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row[0])
        return data

    async def close(self) -> None:
        """Close the connections."""
        if self._reader is not self._conn and not self._closed:
            self._reader.close()
        await super().close()

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        """Replace the saved state; an empty ``data`` deletes the row.

        Raises:
            TypeError: a value is not JSON-serializable.
        """
        if not data:
            await self.delete(conversation_id)
            return
        try:
            encoded = json.dumps(data, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"state of conversation {conversation_id} is not JSON-serializable: {exc}"
            ) from None
        await self._write(self._save, conversation_id, encoded)
        await self._maybe_checkpoint()

    def _save(self, conversation_id: str, encoded: str) -> None:
        self._conn.execute(
            "INSERT INTO state (conversation_id, data, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (conversation_id) DO UPDATE SET data = excluded.data, "
            "updated_at = excluded.updated_at",
            (conversation_id, encoded, time.time()),
        )

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation's row, if any."""
        await self._write(self._delete, conversation_id)
        await self._maybe_checkpoint()

    def _delete(self, conversation_id: str) -> None:
        self._conn.execute("DELETE FROM state WHERE conversation_id = ?", (conversation_id,))

    async def count(self) -> int:
        """Return how many conversations have a saved state."""
        return await self._read(self._count, "state")
