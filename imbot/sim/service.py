"""The write side of ``/api/v1/imessage``: sends, releases, tapbacks, read receipts, typing.

Every public method either raises ``ApiError`` before changing anything or makes its
whole change in one ``core.tx()``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any

from imbot.sim.auth import Principal, require_admin
from imbot.sim.core import Core, Effects, new_id
from imbot.sim.lifecycle import Job
from imbot.sim.media import MediaStore
from imbot.sim.render import message_json, reaction_json
from imbot.sim.responses import ApiError, conflict, not_found, unprocessable
from imbot.sim.store import Row
from imbot.sim.validation import ReactionBody, SendBody
from imbot.sim.visibility import Visibility, connect_command

__all__ = ["Messaging"]

_DAY = 86_400.0


def _window_text(window: float) -> str:
    if window == _DAY:
        return "rolling 24 hours"
    return f"rolling {window:g} seconds"


class Messaging:
    """The ``/api/v1/imessage`` rules.

    Args:
        core: the simulator's shared state.
        media: the media store (to describe ``media_urls``).
        visibility: the scope checks.
    """

    def __init__(self, core: Core, media: MediaStore, visibility: Visibility) -> None:
        self._core = core
        self._store = core.store
        self._media = media
        self._see = visibility
        # identity id -> send times (Unix seconds) inside the rolling day, oldest first.
        # Held in memory so the cap costs O(1) per send; rebuilt from the store on demand.
        self._sends: dict[str, deque[float]] = {}

    # Send

    def send(
        self,
        principal: Principal,
        body: SendBody,
        agent_identity_id: str | None,
        idempotency_key: str | None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``POST /messages``: return ``(status, body, headers)``."""
        identity, conversation = self._sender(principal, body, agent_identity_id)
        fingerprint = ""
        if idempotency_key is not None:
            fingerprint = self._fingerprint(body, agent_identity_id if principal.is_admin else None)
            stored = self._store.one(
                "SELECT * FROM idempotency WHERE identity_id = ? AND key = ?",
                (identity["id"], idempotency_key),
            )
            if stored is not None:
                if stored["request_hash"] != fingerprint:
                    raise conflict(
                        "idempotency_key_reused",
                        "this Idempotency-Key was already used for a different request",
                    )
                return stored["status"], json.loads(stored["body"]), {"Idempotent-Replayed": "true"}
        self._see.require_enabled(identity)
        number = body.recipient or (conversation["remote_number"] if conversation else "")
        if conversation is None:
            conversation = self._store.one(
                "SELECT * FROM conversations WHERE identity_id = ? AND remote_number = ?",
                (identity["id"], number),
            )
            if conversation is None or conversation["assignment_id"] is None:
                raise self._no_assignment(identity, number)
        self._see.require_active(identity, conversation)
        if not self._has_messaged(conversation):
            raise conflict(
                "recipient_has_not_messaged",
                f"{number} connected but has not sent a message yet; the agent can reply once "
                "they do",
            )
        self._see.require_outbound_allowed(identity, number)
        self._check_cap(identity)
        reply_to = self._reply_target(conversation, body.reply_to_message_id)
        with self._core.tx() as fx:
            row = self._insert_outbound(fx, identity, conversation, body, reply_to)
            response = {"message": message_json(row)}
            if idempotency_key is not None:
                self._store.insert(
                    "idempotency",
                    {
                        "identity_id": identity["id"],
                        "key": idempotency_key,
                        "request_hash": fingerprint,
                        "status": 201,
                        "body": json.dumps(response, separators=(",", ":")),
                        "message_id": row["id"],
                        "created_at": row["created_at"],
                    },
                )
        self._sends[identity["id"]].append(time.time())
        return 201, response, self._cap_notice(identity)

    def _cap_notice(self, identity: Row) -> dict[str, str]:
        """``Inkbox-Notices`` (§3.1) once a tenth or less of the send cap is left."""
        cap = self._core.config.send_cap
        if cap is None:
            return {}
        left = cap - len(self._sends[identity["id"]])
        if left > cap // 10:
            return {}
        notice = {
            "code": "send_cap_near",
            "level": "warning",
            "message": f"@{identity['handle']} can send {left} more of its {cap} messages per "
            f"{_window_text(self._core.config.send_cap_window)}",
        }
        return {"Inkbox-Notices": json.dumps([notice], separators=(",", ":"))}

    def _sender(
        self, principal: Principal, body: SendBody, agent_identity_id: str | None
    ) -> tuple[Row, Row | None]:
        if principal.identity_id is not None:
            # Identity keys act as their identity; the query parameter is ignored.
            identity = self._core.identity(principal.identity_id)
            if identity is None:
                raise ApiError(401, "Invalid or missing API key")
            if body.conversation_id is None:
                return identity, None
            return identity, self._see.conversation_for(principal, str(body.conversation_id))
        if body.conversation_id is not None:
            conversation = self._see.conversation_for(
                principal, str(body.conversation_id), agent_identity_id
            )
            identity = self._core.identity(conversation["identity_id"])
            if identity is None:
                raise not_found("Conversation not found")
            return identity, conversation
        if agent_identity_id is None:
            raise unprocessable(
                ["query", "agent_identity_id"],
                "an admin key sending by 'to' must say which identity sends "
                "(?agent_identity_id=...)",
                "missing",
            )
        identity = self._core.identity(agent_identity_id)
        if identity is None:
            raise not_found("Agent identity not found")
        return identity, None

    @staticmethod
    def _fingerprint(body: SendBody, agent_identity_id: str | None) -> str:
        data = body.model_dump(mode="json", exclude_unset=True)
        data["__agent_identity_id"] = agent_identity_id
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def _no_assignment(self, identity: Row, number: str) -> ApiError:
        command = connect_command(identity["handle"])
        router = self._core.config.triage_number
        return ApiError(
            404,
            {
                "error": "no_assignment",
                "message": f"{number} is not connected to @{identity['handle']}; ask them to "
                f"text '{command}' to {router} first (no cold outreach on the shared router)",
                "connect_command": command,
                "router_number": router,
            },
        )

    def _has_messaged(self, conversation: Row) -> bool:
        return (
            self._store.one(
                "SELECT 1 FROM messages WHERE conversation_id = ? AND assignment_id = ? "
                "AND direction = 'inbound' AND is_blocked = 0 LIMIT 1",
                (conversation["id"], conversation["assignment_id"]),
            )
            is not None
        )

    def _check_cap(self, identity: Row) -> None:
        cap = self._core.config.send_cap
        sends = self._sends.get(identity["id"])
        now = time.time()
        if sends is None:
            sends = self._load_sends(identity["id"], cap, now)
            self._sends[identity["id"]] = sends
        window = self._core.config.send_cap_window
        while sends and sends[0] <= now - window:
            sends.popleft()
        if cap is not None and len(sends) >= cap:
            # Honest: the seconds until the oldest counted send leaves the window and frees
            # a slot (short when the cap was reached late in the window, or the window is).
            retry_after = max(1, math.ceil(sends[0] + window - now))
            raise ApiError(
                429,
                {
                    "error": "sender_rate_limited",
                    "message": f"@{identity['handle']} reached its cap of {cap} messages per "
                    f"{_window_text(window)}; retry in {retry_after} s",
                    "limit": cap,
                    "retry_after_seconds": retry_after,
                },
                headers={"Retry-After": str(retry_after)},
            )

    def _load_sends(self, identity_id: str, cap: int | None, now: float) -> deque[float]:
        if cap is None:
            # No cap: nothing to count, so keep the deque from growing.
            return deque(maxlen=1)
        rows = self._store.all(
            "SELECT created_at FROM messages WHERE identity_id = ? AND direction = 'outbound' "
            "ORDER BY seq DESC LIMIT ?",
            (identity_id, cap),
        )
        times = sorted(datetime.fromisoformat(row["created_at"]).timestamp() for row in rows)
        window = self._core.config.send_cap_window
        return deque((t for t in times if t > now - window), maxlen=cap)

    def _reply_target(self, conversation: Row, reply_to: uuid.UUID | None) -> Row | None:
        if reply_to is None:
            return None
        target = self._core.message(str(reply_to))
        if target is None or target["conversation_id"] != conversation["id"]:
            raise not_found("Reply target message not found in this conversation")
        return target

    def _insert_outbound(
        self,
        fx: Effects,
        identity: Row,
        conversation: Row,
        body: SendBody,
        reply_to: Row | None,
    ) -> Row:
        now = self._core.clock.now()
        message_id = new_id()
        thread: dict[str, Any] = {}
        if reply_to is not None:
            root = reply_to["thread_root_message_id"] or reply_to["id"]
            thread_id = reply_to["thread_id"] or str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"imbot-sim:{root}")
            )
            if reply_to["thread_id"] is None:
                self._store.update(
                    "messages",
                    reply_to["id"],
                    {"thread_id": thread_id, "thread_root_message_id": root},
                )
            thread = {
                "reply_to_message_id": reply_to["id"],
                "thread_id": thread_id,
                "thread_root_message_id": root,
            }
        media = [self._media.describe(url) for url in body.media_urls or []]
        row = self._store.insert_returning(
            "messages",
            {
                "id": message_id,
                "conversation_id": conversation["id"],
                "identity_id": identity["id"],
                "assignment_id": conversation["assignment_id"],
                "direction": "outbound",
                "remote_number": conversation["remote_number"],
                "content": body.text,
                "media": json.dumps(media) if media else None,
                "send_style": body.send_style,
                "status": "queued",
                "created_at": now,
                "updated_at": now,
                **thread,
            },
        )
        self._store.run(
            "UPDATE conversations SET last_activity_at = ?, updated_at = ? WHERE id = ?",
            (now, now, conversation["id"]),
        )
        fx.jobs.append((time.time(), Job("send", message_id)))
        return row

    def lookup_send(self, principal: Principal, sender_id: str, key: str) -> dict[str, Any]:
        """``GET /message-sends/lookup``: the message an ``Idempotency-Key`` created."""
        identity = self._see.scope(principal, sender_id)
        assert identity is not None
        row = self._store.one(
            "SELECT message_id FROM idempotency WHERE identity_id = ? AND key = ?",
            (identity["id"], key),
        )
        if row is None or row["message_id"] is None:
            raise not_found("No send with that Idempotency-Key")
        return {"message_id": row["message_id"]}

    def release_assignment(self, principal: Principal, assignment_id: str) -> None:
        """``DELETE /assignments/{id}`` (admin only): silent to the human."""
        require_admin(principal)
        row = self._store.one("SELECT * FROM assignments WHERE id = ?", (assignment_id,))
        if row is None or row["status"] != "active":
            raise not_found("Assignment not found or already released")
        now = self._core.clock.now()
        with self._core.tx() as fx:
            self._store.update(
                "assignments",
                assignment_id,
                {"status": "released", "released_at": now, "updated_at": now},
            )
            conversation = self._store.one(
                "SELECT id FROM conversations WHERE assignment_id = ?", (assignment_id,)
            )
            if conversation is not None:
                self._store.update(
                    "conversations",
                    conversation["id"],
                    {"assignment_status": "released", "updated_at": now},
                )
                fx.threads.append(conversation["id"])
                if self._core.typing.pop(conversation["id"], None) is not None:
                    fx.typing.append((conversation["id"], False))

    # Read receipts and typing

    def _writable(self, principal: Principal, conversation_id: str) -> tuple[Row, Row]:
        conversation = self._see.conversation_for(principal, conversation_id)
        identity = self._core.identity(conversation["identity_id"])
        if identity is None:
            raise not_found("Conversation not found")
        self._see.require_enabled(identity)
        self._see.require_active(identity, conversation)
        return identity, conversation

    def mark_read(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """``POST /mark-read``: mark the human's messages read and show it on the phone."""
        _, conversation = self._writable(principal, conversation_id)
        ids = [
            row["id"]
            for row in self._store.all(
                "SELECT id FROM messages WHERE conversation_id = ? AND direction = 'inbound' "
                "AND is_read = 0 AND is_blocked = 0",
                (conversation["id"],),
            )
        ]
        if ids:
            now = self._core.clock.now()
            with self._core.tx() as fx:
                self._store.run(
                    "UPDATE messages SET is_read = 1, updated_at = ? WHERE conversation_id = ? "
                    "AND direction = 'inbound' AND is_read = 0 AND is_blocked = 0",
                    (now, conversation["id"]),
                )
                fx.messages.extend(ids)
        return {"conversation_id": conversation["id"], "updated_count": len(ids)}

    def typing(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """``POST /typing``: show the bubble until the next message or the TTL."""
        _, conversation = self._writable(principal, conversation_id)
        was_typing = self._core.typing_active(conversation["id"])
        until = time.time() + self._core.config.typing_ttl
        self._core.typing[conversation["id"]] = until
        fx = Effects()
        fx.jobs.append((until, Job("typing", conversation["id"])))
        if not was_typing:
            fx.typing.append((conversation["id"], True))
        self._core.release(fx)
        return {"status": "sent"}

    # Tapbacks

    def send_reaction(self, principal: Principal, body: ReactionBody) -> dict[str, Any]:
        """``POST /reactions``: the agent's tapback replaces its previous one on that part."""
        message = self._see.message_for(principal, str(body.message_id))
        identity, conversation = self._writable(principal, message["conversation_id"])
        self._see.require_outbound_allowed(identity, conversation["remote_number"])
        now = self._core.clock.now()
        reaction_id = new_id()
        with self._core.tx() as fx:
            self._store.run(
                "UPDATE reactions SET removed_at = ?, updated_at = ? WHERE message_id = ? "
                "AND direction = 'outbound' AND part_index = ? AND removed_at IS NULL",
                (now, now, message["id"], body.part_index),
            )
            self._store.insert(
                "reactions",
                {
                    "id": reaction_id,
                    "message_id": message["id"],
                    "conversation_id": conversation["id"],
                    "identity_id": identity["id"],
                    "assignment_id": conversation["assignment_id"],
                    "direction": "outbound",
                    "reaction": body.reaction,
                    "custom_emoji": None,
                    "remote_number": conversation["remote_number"],
                    "part_index": body.part_index,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            row = self._store.one("SELECT * FROM reactions WHERE id = ?", (reaction_id,))
            assert row is not None
            # §18: the agent's own tapback comes back as `imessage.reaction_received` with
            # `direction: "outbound"`; a bot that answers every tapback must filter on it.
            self._core.delivery.fanout(
                fx,
                identity,
                "imessage.reaction_received",
                conversation["id"],
                {"message": None, "reaction": reaction_json(row)},
            )
            fx.messages.append(message["id"])
        return reaction_json(row)

    def remove_reaction(self, principal: Principal, reaction_id: str) -> None:
        """``DELETE /reactions/{id}``: only the agent's own; gone already is fine."""
        row = self._store.one("SELECT * FROM reactions WHERE id = ?", (reaction_id,))
        if row is None or (
            principal.identity_id is not None and row["identity_id"] != principal.identity_id
        ):
            raise not_found("Reaction not found")
        if row["direction"] != "outbound":
            raise ApiError(
                403,
                {
                    "error": "not_reaction_sender",
                    "message": "only the sender can take back a tapback; this one is the human's",
                },
            )
        if row["removed_at"] is not None:
            return
        conversation = self._core.conversation(row["conversation_id"])
        identity = self._core.identity(row["identity_id"])
        if conversation is not None and identity is not None:
            self._see.require_active(identity, conversation)
        now = self._core.clock.now()
        with self._core.tx() as fx:
            self._store.update("reactions", reaction_id, {"removed_at": now, "updated_at": now})
            fx.messages.append(row["message_id"])
