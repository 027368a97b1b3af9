"""SQLite stores: a durable inbox and state store for one machine (stdlib ``sqlite3``).

Both run on ``sqlite_engine.Engine``: one file can hold both stores' tables; durability
(WAL, ``synchronous=normal|full``) and speed (group commit, off-loop checkpoints) are
explained there. The inbox keeps accepted events until they are handled, their retry
counts, and the dead letters; the state store keeps one JSON object per conversation.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from imbot.storage.base import DeadLetter, PendingEvent, encode_state
from imbot.storage.sqlite_engine import (
    BUSY_TIMEOUT,
    CHECKPOINT_EVERY,
    PRUNE_CHUNK,
    PRUNE_EVERY,
    Engine,
    Synchronous,
)

__all__ = ["SqliteInboxStore", "SqliteStateStore", "Synchronous"]

DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds an accepted event id is kept for dedupe."""
DEFAULT_MAX_IDS = 1_000_000
"""Most event ids kept for dedupe, whatever their age."""

_SEQ = "SELECT seq FROM inbox_seen WHERE event_id = ?"


class SqliteInboxStore(Engine):
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
        if self._writes >= 4 * CHECKPOINT_EVERY:
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
        if self._adds % PRUNE_EVERY == 0 and seq is not None:
            self._prune(seq, PRUNE_CHUNK)
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
        self._conn.execute(f"DELETE FROM inbox_pending WHERE seq = ({_SEQ})", (event_id,))

    async def pending(self) -> list[PendingEvent]:
        """Return the events accepted but not completed, oldest first."""
        return await self._read(self._pending)

    def _pending(self) -> list[PendingEvent]:
        rows = self._conn.execute(
            "SELECT s.event_id, p.raw, p.starts, p.first_failed_at FROM inbox_pending p "
            "JOIN inbox_seen s USING (seq) ORDER BY p.seq"
        ).fetchall()
        return [
            PendingEvent(event_id, bytes(raw), starts, first)
            for event_id, raw, starts, first in rows
        ]

    async def started(self, event_id: str) -> int:
        """Count one more start of a pending event's handling; committed before returning."""
        return await self._write(self._started, event_id)

    def _started(self, event_id: str) -> int:
        row = self._conn.execute(
            f"UPDATE inbox_pending SET starts = starts + 1 WHERE seq = ({_SEQ}) RETURNING starts",
            (event_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    async def failed(self, event_id: str, error: str) -> float:
        """Record a transient failure; return when the event first failed."""
        return await self._write(self._failed, event_id, error)

    def _failed(self, event_id: str, error: str) -> float:
        row = self._conn.execute(
            "UPDATE inbox_pending SET starts = 0, last_error = ?, "
            f"first_failed_at = COALESCE(first_failed_at, ?) WHERE seq = ({_SEQ}) "
            "RETURNING first_failed_at",
            (error, self._clock(), event_id),
        ).fetchone()
        return float(row[0]) if row else self._clock()

    async def dead_letter(self, event_id: str, *, reason: str, error: str, attempts: int) -> None:
        """Move a pending event to the dead letters, in one transaction."""
        await self._write(self._dead_letter, event_id, reason, error, attempts)

    def _dead_letter(self, event_id: str, reason: str, error: str, attempts: int) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO inbox_dead (event_id, seq, raw, reason, error, attempts, "
            "first_failed_at, dead_at) SELECT ?, p.seq, p.raw, ?, ?, ?, p.first_failed_at, ? "
            f"FROM inbox_pending p WHERE p.seq = ({_SEQ})",
            (event_id, reason, error, attempts, self._clock(), event_id),
        )
        self._conn.execute(f"DELETE FROM inbox_pending WHERE seq = ({_SEQ})", (event_id,))

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the dead letters, oldest first."""
        return await self._read(self._dead_letters)

    def _dead_letters(self) -> list[DeadLetter]:
        rows = self._conn.execute(
            "SELECT event_id, raw, reason, error, attempts, first_failed_at, dead_at "
            "FROM inbox_dead ORDER BY dead_at, seq"
        ).fetchall()
        return [
            DeadLetter(event_id, bytes(raw), reason, error, attempts, first, dead)
            for event_id, raw, reason, error, attempts, first, dead in rows
        ]

    async def requeue(self, event_id: str) -> PendingEvent | None:
        """Move a dead letter back to the pending events, at its place in arrival order."""
        return await self._write(self._requeue, event_id)

    def _requeue(self, event_id: str) -> PendingEvent | None:
        row = self._conn.execute(
            "DELETE FROM inbox_dead WHERE event_id = ? RETURNING seq, raw", (event_id,)
        ).fetchone()
        if row is None:
            return None
        seq, raw = row
        # Its id may have left the dedupe window since; put it back under the same seq.
        self._conn.execute(
            "INSERT OR IGNORE INTO inbox_seen (seq, event_id, accepted_at) VALUES (?, ?, ?)",
            (seq, event_id, self._clock()),
        )
        self._conn.execute(
            "INSERT OR REPLACE INTO inbox_pending (seq, raw) VALUES "
            "((SELECT seq FROM inbox_seen WHERE event_id = ?), ?)",
            (event_id, raw),
        )
        return PendingEvent(event_id, bytes(raw))

    async def prune(self) -> None:
        """Apply the retention and size bounds now (they are also applied as events arrive)."""
        await self._write(self._prune_all)

    def _prune_all(self) -> None:
        last = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox_seen").fetchone()[0]
        self._prune(int(last), -1)  # LIMIT -1: no limit

    async def count(self) -> int:
        """Return how many event ids the window holds (pending ones included)."""
        return await self._read(self._count, "inbox_seen")


class SqliteStateStore(Engine):
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
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
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
        await self._write(self._save, conversation_id, encode_state(conversation_id, data))
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
