"""The human's view: a phone's threads and timeline items, and their live updates.

Timeline items come from two places: the conversations' messages (the agent's and the
human's), and ``phone_items``, which hold what never reaches an agent: the router's
replies and texts the router could not place.
"""

from __future__ import annotations

from typing import Any

from imbot.sim.core import Core, Effects
from imbot.sim.render import media_items
from imbot.sim.store import Row

__all__ = ["Timeline"]

_ROUTER = "router"
_SYSTEM = "system"  # router.SYSTEM: a phone item the service wrote, not the agent


def _status(row: Row) -> str | None:
    if row["direction"] == "inbound":
        return "read" if row["is_read"] else "delivered"
    # The phone only sees an agent's message once it arrived (or failed to); an SMS has
    # arrived once sent (its `sent` is final).
    if row["status"] == "sent" and row["service"] == "sms":
        return "delivered"
    return {"delivered": "delivered", "error": "failed", "declined": "failed"}.get(row["status"])


class Timeline:
    """Renders the ``/sim/v1`` phone JSON and publishes changes to the phone hub.

    Args:
        core: the simulator's shared state.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._store = core.store

    # Rendering

    def _message_item(self, row: Row, handle: str, reactions: list[Row]) -> dict[str, Any] | None:
        status = _status(row)
        if status is None:
            return None
        router = bool(row["via_router"])
        return {
            "id": row["id"],
            "thread": _ROUTER if router else handle,
            "conversation_id": None if router else row["conversation_id"],
            "from": "me" if row["direction"] == "inbound" else "them",
            "text": row["content"],
            "media": media_items(row["media"]),
            "send_style": row["send_style"],
            "status": status,
            "reactions": [
                {
                    "id": r["id"],
                    "from": "me" if r["direction"] == "inbound" else "them",
                    "reaction": r["reaction"],
                    "custom_emoji": r["custom_emoji"],
                }
                for r in reactions
            ],
            "created_at": row["created_at"],
            "system": False,
        }

    @staticmethod
    def _phone_item(row: Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "thread": row["thread"],
            "conversation_id": row["conversation_id"],
            # The service's own note in an agent's thread reads as theirs, marked `system`.
            "from": "me" if row["sender"] == "me" else "them",
            "text": row["text"],
            "media": media_items(row["media"]),
            "send_style": None,
            "status": row["status"],
            "reactions": [],
            "created_at": row["created_at"],
            "system": row["sender"] == _SYSTEM,
        }

    def _thread(self, conversation: Row) -> dict[str, Any]:
        return {
            "thread": conversation["handle"],
            "conversation_id": conversation["id"],
            "status": conversation["assignment_status"],
            "typing": self._core.typing_active(conversation["id"]),
        }

    def _conversations(self, number: str) -> list[Row]:
        return self._store.all(
            "SELECT c.*, i.handle FROM conversations c JOIN identities i ON i.id = c.identity_id "
            "WHERE c.remote_number = ? ORDER BY c.last_activity_at DESC, c.seq DESC",
            (number,),
        )

    def view(self, number: str) -> dict[str, Any]:
        """The whole timeline of a phone: its threads and every item, oldest first."""
        conversations = self._conversations(number)
        handles = {c["id"]: c["handle"] for c in conversations}
        threads: list[dict[str, Any]] = [
            {"thread": _ROUTER, "conversation_id": None, "status": None, "typing": False}
        ]
        threads.extend(self._thread(c) for c in conversations)
        rows = self._store.all(
            "SELECT * FROM messages WHERE remote_number = ? ORDER BY seq", (number,)
        )
        rows = [row for row in rows if row["conversation_id"] in handles]
        reactions = self._core.live_reactions([row["id"] for row in rows])
        items: list[dict[str, Any]] = []
        for row in rows:
            item = self._message_item(
                row, handles[row["conversation_id"]], reactions.get(row["id"], [])
            )
            if item is not None:
                items.append(item)
        items.extend(
            self._phone_item(row)
            for row in self._store.all(
                "SELECT * FROM phone_items WHERE number = ? ORDER BY seq", (number,)
            )
        )
        # Stamps are unique and increasing across tables (see Clock), so this is a total order.
        items.sort(key=lambda item: item["created_at"])
        return {
            "number": number,
            "router_number": self._core.config.triage_number,
            "threads": threads,
            "items": items,
        }

    def message_item(self, message_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """``(phone number, item)`` for one message; the item is ``None`` if not shown."""
        row = self._store.one(
            "SELECT m.*, i.handle FROM messages m JOIN identities i ON i.id = m.identity_id "
            "WHERE m.id = ?",
            (message_id,),
        )
        if row is None:
            return None
        reactions = self._core.live_reactions([message_id]).get(message_id, [])
        return row["remote_number"], self._message_item(row, row["handle"], reactions)

    def phone_item(self, item_id: str) -> dict[str, Any] | None:
        """A router or phone-only item by id."""
        row = self._store.one("SELECT * FROM phone_items WHERE id = ?", (item_id,))
        return None if row is None else self._phone_item(row)

    def thread(self, conversation_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(phone number, thread)`` for one conversation."""
        row = self._store.one(
            "SELECT c.*, i.handle FROM conversations c JOIN identities i ON i.id = c.identity_id "
            "WHERE c.id = ?",
            (conversation_id,),
        )
        return None if row is None else (row["remote_number"], self._thread(row))

    # Live updates

    def publish(self, fx: Effects) -> None:
        """Push the changes of a committed transaction to the phones that watch."""
        hub = self._core.hub
        if not hub.active:
            return
        # Threads first, so a page learns of a new thread before its items.
        for conversation_id in dict.fromkeys(fx.threads):
            found_thread = self.thread(conversation_id)
            if found_thread is not None and hub.watching(found_thread[0]):
                hub.publish(found_thread[0], "thread", found_thread[1])
        for message_id in dict.fromkeys(fx.messages):
            found = self.message_item(message_id)
            if found is not None and found[1] is not None and hub.watching(found[0]):
                hub.publish(found[0], "item", found[1])
        for item_id in fx.phone_items:
            row = self._store.one("SELECT * FROM phone_items WHERE id = ?", (item_id,))
            if row is not None and hub.watching(row["number"]):
                hub.publish(row["number"], "item", self._phone_item(row))
        for conversation_id, typing in fx.typing:
            found_thread = self.thread(conversation_id)
            if found_thread is not None and hub.watching(found_thread[0]):
                hub.publish(
                    found_thread[0],
                    "typing",
                    {"thread": found_thread[1]["thread"], "typing": typing},
                )
