"""The read side of ``/api/v1/imessage``: messages, threads, conversations, assignments."""

from __future__ import annotations

from typing import Any

from imbot.sim.auth import Principal
from imbot.sim.core import Core
from imbot.sim.params import Query
from imbot.sim.render import assignment_json, conversation_json
from imbot.sim.responses import not_found, unprocessable
from imbot.sim.store import Row
from imbot.sim.visibility import Visibility, connect_command

__all__ = ["Queries"]


class Queries:
    """Lists and lookups; reads never change anything (not even ``is_read``).

    Args:
        core: the simulator's shared state.
        visibility: the scope checks.
    """

    def __init__(self, core: Core, visibility: Visibility) -> None:
        self._core = core
        self._store = core.store
        self._see = visibility

    def triage(self, principal: Principal) -> dict[str, Any]:
        """``GET /triage-number``: the router number and the connect command."""
        handle = "<agent-handle>"
        if principal.identity_id is not None:
            identity = self._core.identity(principal.identity_id)
            if identity is not None:
                handle = identity["handle"]
        return {
            "number": self._core.config.triage_number,
            "connect_command": connect_command(handle),
        }

    def list_messages(self, principal: Principal, query: Query) -> list[dict[str, Any]]:
        """``GET /messages``: newest first."""
        identity = self._see.scope(principal, query.uuid("agent_identity_id"))
        if identity is not None and principal.is_admin:
            self._see.require_enabled(identity)
        conversation_id = query.uuid("conversation_id")
        thread_id = query.uuid("thread_id")
        if thread_id is not None and conversation_id is None:
            raise unprocessable(["query", "thread_id"], "thread_id requires conversation_id")
        limit, offset = query.limit(), query.offset()
        is_read = query.flag("is_read")
        is_blocked = False if not principal.is_admin else query.flag("is_blocked")
        query.flag("include_groups")
        start, end = query.time_range()
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("identity_id = ?", identity["id"] if identity is not None else None),
            ("conversation_id = ?", conversation_id),
            ("thread_id = ?", thread_id),
            ("is_read = ?", None if is_read is None else int(is_read)),
            ("is_blocked = ?", None if is_blocked is None else int(is_blocked)),
            ("created_at >= ?", start),
            ("created_at <= ?", end),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "SELECT * FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
        rows = self._store.all(sql, [*params, limit, offset])
        return self._see.render_messages(rows)

    def get_message(self, principal: Principal, message_id: str, query: Query) -> dict[str, Any]:
        """``GET /messages/{id}``."""
        row = self._see.message_for(principal, message_id, query.uuid("agent_identity_id"))
        return self._see.render_messages([row])[0]

    def thread_of_message(
        self, principal: Principal, message_id: str, query: Query
    ) -> dict[str, Any]:
        """``GET /messages/{id}/thread``: a chronological page of the message's thread."""
        row = self._see.message_for(principal, message_id, query.uuid("agent_identity_id"))
        if row["thread_id"] is None:
            limit = query.limit()
            self._cursor(query)
            return {
                "thread_id": None,
                "conversation_id": row["conversation_id"],
                "thread_root_message_id": None,
                "messages": self._see.render_messages([row])[:limit],
                "next_cursor": None,
            }
        return self._thread_page(principal, row["conversation_id"], row["thread_id"], query)

    def conversation_thread(
        self, principal: Principal, conversation_id: str, thread_id: str, query: Query
    ) -> dict[str, Any]:
        """``GET /conversations/{id}/threads/{thread_id}``."""
        self._see.conversation_for(principal, conversation_id, query.uuid("agent_identity_id"))
        return self._thread_page(principal, conversation_id, thread_id, query)

    @staticmethod
    def _cursor(query: Query) -> int:
        cursor = query.get("cursor")
        if cursor is None:
            return 0
        if not cursor.isdigit():
            raise unprocessable(["query", "cursor"], "unknown cursor")
        return int(cursor)

    def _thread_page(
        self, principal: Principal, conversation_id: str, thread_id: str, query: Query
    ) -> dict[str, Any]:
        limit = query.limit()
        offset = self._cursor(query)
        hide_blocked = "" if principal.is_admin else " AND is_blocked = 0"
        rows = self._store.all(
            "SELECT * FROM messages WHERE conversation_id = ? AND thread_id = ?"
            + hide_blocked
            + " ORDER BY seq LIMIT ? OFFSET ?",
            (conversation_id, thread_id, limit + 1, offset),
        )
        if not rows and offset == 0:
            raise not_found("Thread not found")
        more = len(rows) > limit
        rows = rows[:limit]
        root = rows[0]["thread_root_message_id"] if rows else None
        return {
            "thread_id": thread_id,
            "conversation_id": conversation_id,
            "thread_root_message_id": root,
            "messages": self._see.render_messages(rows),
            "next_cursor": str(offset + limit) if more else None,
        }

    def list_conversations(self, principal: Principal, query: Query) -> list[dict[str, Any]]:
        """``GET /conversations``: summaries, most recent activity first."""
        identity = self._see.scope(principal, query.uuid("agent_identity_id"))
        if identity is not None and principal.is_admin:
            self._see.require_enabled(identity)
        limit, offset = query.limit(), query.offset()
        is_blocked = False if not principal.is_admin else query.flag("is_blocked")
        query.flag("include_groups")
        start, end = query.time_range()
        join = "" if is_blocked is None else f" AND m.is_blocked = {int(is_blocked)}"
        where, params = "", []
        if identity is not None:
            where, params = " WHERE c.identity_id = ?", [identity["id"]]
        having: list[str] = []
        if start is not None:
            having.append("activity >= ?")
            params.append(start)
        if end is not None:
            having.append("activity <= ?")
            params.append(end)
        sql = (
            "SELECT c.*, COUNT(m.seq) AS total_count, "
            "COALESCE(SUM(m.direction = 'inbound' AND m.is_read = 0), 0) AS unread_count, "
            "MAX(m.seq) AS latest_seq, COALESCE(MAX(m.created_at), c.created_at) AS activity "
            "FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
            + join
            + where
            + " GROUP BY c.id"
            + (" HAVING " + " AND ".join(having) if having else "")
            + " ORDER BY activity DESC, c.seq DESC LIMIT ? OFFSET ?"
        )
        rows = self._store.all(sql, [*params, limit, offset])
        latest_seqs = [row["latest_seq"] for row in rows if row["latest_seq"] is not None]
        latest: dict[int, Row] = {}
        if latest_seqs:
            marks = ",".join("?" * len(latest_seqs))
            for message in self._store.all(
                f"SELECT seq, content, created_at, direction, media FROM messages "
                f"WHERE seq IN ({marks})",
                latest_seqs,
            ):
                latest[message["seq"]] = message
        out = []
        for row in rows:
            summary = conversation_json(row)
            last = latest.get(row["latest_seq"]) if row["latest_seq"] is not None else None
            summary.update(
                latest_text=last["content"] if last else None,
                latest_message_at=last["created_at"] if last else None,
                latest_direction=last["direction"] if last else None,
                latest_has_media=bool(last and last["media"]),
                unread_count=row["unread_count"],
                total_count=row["total_count"],
            )
            out.append(summary)
        return out

    def get_conversation(
        self, principal: Principal, conversation_id: str, query: Query
    ) -> dict[str, Any]:
        """``GET /conversations/{id}``."""
        return conversation_json(
            self._see.conversation_for(principal, conversation_id, query.uuid("agent_identity_id"))
        )

    def list_assignments(self, principal: Principal, query: Query) -> list[dict[str, Any]]:
        """``GET /assignments``: active connections, newest first."""
        identity = self._see.scope(principal, query.uuid("agent_identity_id"))
        limit, offset = query.limit(), query.offset()
        if identity is None:
            rows = self._store.all(
                "SELECT * FROM assignments WHERE status = 'active' "
                "ORDER BY seq DESC LIMIT ? OFFSET ?",
                (limit, offset),
            )
        else:
            rows = self._store.all(
                "SELECT * FROM assignments WHERE status = 'active' AND identity_id = ? "
                "ORDER BY seq DESC LIMIT ? OFFSET ?",
                (identity["id"], limit, offset),
            )
        return [assignment_json(row, self._core.organization_id) for row in rows]
