"""The human's side of the rules: the router, texts and tapbacks from phones.

A human texts ``connect @handle`` to the router number to be connected to an agent
identity (an assignment, and a conversation reused across reconnects). Later texts go to
the conversation they address, else to the phone's most recently active connection.
"""

from __future__ import annotations

import json
import re
from typing import Any

from imbot.sim.core import Core, Effects, new_id
from imbot.sim.lifecycle import message_event
from imbot.sim.media import MediaStore
from imbot.sim.policy import blocked
from imbot.sim.render import phone_json, reaction_json
from imbot.sim.responses import conflict, not_found
from imbot.sim.store import Row
from imbot.sim.validation import PhoneMessage, PhoneReaction, PhoneState

__all__ = ["CONNECT", "Router"]

CONNECT = re.compile(r"^\s*connect\s+@?([A-Za-z0-9][A-Za-z0-9_.-]{0,62})\s*$", re.IGNORECASE)

NOT_CONNECTED = "You're not connected to an agent yet. Text connect @handle to start."
ROUTER_THREAD = "router"
"""The ``to`` value that addresses the router number rather than an agent's thread."""
ROUTER_HELP = (
    "This is the Inkbox router. Text connect @handle here to reach an agent; you then chat "
    "with it in its own thread."
)
SYSTEM = "system"
"""The ``phone_items.sender`` of the service's own note in an agent's thread (not the agent's)."""
_LISTED = 10  # handles named in an unknown-handle reply, at most


class Router:
    """Handles what phones send.

    Args:
        core: the simulator's shared state.
        media: the media store (to describe a sent ``media_url``).
    """

    def __init__(self, core: Core, media: MediaStore) -> None:
        self._core = core
        self._store = core.store
        self._media = media

    def info(self) -> dict[str, Any]:
        """``GET /sim/v1/info``."""
        handles = [
            row["handle"]
            for row in self._store.all(
                "SELECT handle FROM identities WHERE imessage_enabled = 1 ORDER BY seq"
            )
        ]
        phones = [
            row["number"] for row in self._store.all("SELECT number FROM phones ORDER BY rowid")
        ]
        return {
            "router_number": self._core.config.triage_number,
            "handles": handles,
            "phones": phones,
        }

    def set_phone(self, number: str, body: PhoneState) -> dict[str, Any]:
        """``PUT /sim/v1/phones/{number}``: reachability, transport and contact card.

        A field left out keeps its value. A phone with a ``name`` (or ``memories``) is a
        known contact: webhook envelopes about it carry it in ``data.contacts``.
        """
        self._core.touch_phone(number)
        phone = self._core.phone(number)
        assert phone is not None
        changes: dict[str, Any] = {}
        fields = body.model_fields_set
        if "unreachable" in fields and body.unreachable is not None:
            error_code = body.error_code if body.unreachable else None
            if body.unreachable and not error_code:
                error_code = "unreachable"
            changes["unreachable"] = int(body.unreachable)
            changes["error_code"] = error_code
        if "delivery" in fields and body.delivery is not None:
            changes["delivery"] = body.delivery
        if "name" in fields:
            changes["contact_name"] = body.name.strip() if body.name and body.name.strip() else None
        if "memories" in fields:
            changes["memories"] = json.dumps(body.memories) if body.memories else None
        if "agent_handle" in fields:
            handle = body.agent_handle.lstrip("@") if body.agent_handle else None
            if handle and self._core.identity_by_handle(handle) is None:
                raise not_found(f"No identity @{handle}")
            changes["agent_handle"] = handle
        if ("contact_name" in changes or "memories" in changes) and phone["contact_id"] is None:
            changes["contact_id"] = new_id()
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._store.run(
                f"UPDATE phones SET {assignments} WHERE number = ?", (*changes.values(), number)
            )
            self._core.phone_changed(number)
        return phone_json(self._core.phone(number))

    # Texts

    def human_text(self, number: str, body: PhoneMessage) -> dict[str, Any]:
        """``POST /sim/v1/phones/{number}/messages``: return the new timeline item."""
        with self._core.tx() as fx:
            self._core.touch_phone(number)
            match = CONNECT.match(body.text or "") if body.media_url is None else None
            if match is not None:
                ref = self._connect(fx, number, match.group(1), body.text or "")
            else:
                ref = self._route(fx, number, body)
        return self._item(ref)

    def _item(self, ref: tuple[str, str]) -> dict[str, Any]:
        kind, item_id = ref
        if kind == "message":
            found = self._core.timeline.message_item(item_id)
            assert found is not None and found[1] is not None
            return found[1]
        item = self._core.timeline.phone_item(item_id)
        assert item is not None
        return item

    def _note(
        self,
        fx: Effects,
        number: str,
        *,
        sender: str,
        text: str | None,
        thread: str = "router",
        conversation_id: str | None = None,
        media: list[dict[str, Any]] | None = None,
        status: str = "delivered",
    ) -> tuple[str, str]:
        item_id = new_id()
        self._store.insert(
            "phone_items",
            {
                "id": item_id,
                "number": number,
                "thread": thread,
                "conversation_id": conversation_id,
                "sender": sender,
                "text": text,
                "media": json.dumps(media) if media else None,
                "status": status,
                "created_at": self._core.clock.now(),
            },
        )
        fx.phone_items.append(item_id)
        return ("item", item_id)

    def _connect(self, fx: Effects, number: str, handle: str, text: str) -> tuple[str, str]:
        identity = self._core.identity_by_handle(handle)
        # Unknown, disabled and blocking identities get the same answer, so the router
        # does not reveal which handles exist or who blocked whom (§9, §10.7).
        if (
            identity is None
            or not identity["imessage_enabled"]
            or blocked(self._store, identity, number, "inbound") is not None
            or blocked(self._store, identity, number, "outbound") is not None
        ):
            mine = self._note(fx, number, sender="me", text=text)
            self._note(fx, number, sender="them", text=self._unknown(number, handle))
            return mine
        conversation = self._store.one(
            "SELECT * FROM conversations WHERE identity_id = ? AND remote_number = ?",
            (identity["id"], number),
        )
        if conversation is not None and conversation["assignment_status"] == "active":
            mine = self._note(fx, number, sender="me", text=text)
            self._note(
                fx,
                number,
                sender="them",
                text=f"You're already connected to @{identity['handle']}. Just keep texting.",
            )
            return mine
        now = self._core.clock.now()
        assignment_id = new_id()
        self._store.insert(
            "assignments",
            {
                "id": assignment_id,
                "identity_id": identity["id"],
                "remote_number": number,
                "status": "active",
                "created_at": now,
                "updated_at": now,
            },
        )
        if conversation is None:
            conversation_id = new_id()
            self._store.insert(
                "conversations",
                {
                    "id": conversation_id,
                    "identity_id": identity["id"],
                    "remote_number": number,
                    "assignment_id": assignment_id,
                    "assignment_status": "active",
                    "last_activity_at": now,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        else:
            # §16 #6: a reconnect reuses the conversation with a new assignment.
            conversation_id = conversation["id"]
            self._store.update(
                "conversations",
                conversation_id,
                {
                    "assignment_id": assignment_id,
                    "assignment_status": "active",
                    "last_activity_at": now,
                    "updated_at": now,
                },
            )
        fx.threads.append(conversation_id)
        name = identity["handle"]
        if self._core.config.connect_event:
            # The old behaviour, on request: the connect text becomes the conversation's
            # first inbound message, so the agent hears of the human and may greet at once.
            row = self._conversation(conversation_id)
            mine = ("message", self._inbound(fx, identity, row, text, None, via_router=True))
            self._note(
                fx,
                number,
                sender="them",
                text=f"Connected to @{name}. Text here to chat; text connect @another "
                "to reach someone else.",
            )
            return mine
        # Inkbox's flow (§10, §18): the router confirms, then the number now assigned to
        # the agent texts the human in a new thread. The agent hears nothing until the
        # human writes there, and may not write first.
        mine = self._note(fx, number, sender="me", text=text)
        self._note(
            fx,
            number,
            sender="them",
            text=f"Connected to @{name}. @{name} is texting you from its own number: "
            "open that thread and say hi to start.",
        )
        self._note(
            fx,
            number,
            sender=SYSTEM,
            text=f"Hi! This is the number of {self._title(identity)} on Inkbox. Text here to "
            "chat; it can write to you once you have sent a first message.",
            thread=name,
            conversation_id=conversation_id,
        )
        return mine

    @staticmethod
    def _title(identity: Row) -> str:
        display = identity["display_name"]
        return f"{display} (@{identity['handle']})" if display else f"@{identity['handle']}"

    def _unknown(self, number: str, handle: str) -> str:
        """The router's answer to a handle it will not connect: which agents it would."""
        # Unknown, disabled and blocking identities get the same answer (§10.7); the list
        # names only the agents this phone could connect to, so it reveals no block.
        reachable = [
            row["handle"]
            for row in self._store.all(
                "SELECT * FROM identities WHERE imessage_enabled = 1 ORDER BY seq"
            )
            if row["handle"].lower() != handle.lower()
            and blocked(self._store, row, number, "inbound") is None
            and blocked(self._store, row, number, "outbound") is None
        ]
        if not reachable:
            return (
                f"We couldn't find an agent called @{handle}, and there is no agent here you "
                "can text yet."
            )
        shown = ", ".join(f"@{h}" for h in reachable[:_LISTED])
        if len(reachable) > _LISTED:
            shown += f" and {len(reachable) - _LISTED} more"
        return (
            f"We couldn't find an agent called @{handle}. Agents you can text here: {shown}. "
            f"For example, text connect @{reachable[0]}."
        )

    def _conversation(self, conversation_id: str) -> Row:
        row = self._core.conversation(conversation_id)
        assert row is not None
        return row

    def _route(self, fx: Effects, number: str, body: PhoneMessage) -> tuple[str, str]:
        media = [self._media.describe(body.media_url)] if body.media_url else None
        if body.to == ROUTER_THREAD:
            # Texting the router number itself: only `connect @handle` means anything there.
            mine = self._note(fx, number, sender="me", text=body.text, media=media)
            self._note(fx, number, sender="them", text=ROUTER_HELP)
            return mine
        if body.to is not None:
            identity = self._core.identity_by_handle(body.to)
            conversation = (
                self._store.one(
                    "SELECT * FROM conversations WHERE identity_id = ? AND remote_number = ?",
                    (identity["id"], number),
                )
                if identity is not None
                else None
            )
            if identity is None or conversation is None:
                mine = self._note(fx, number, sender="me", text=body.text, media=media)
                self._note(
                    fx,
                    number,
                    sender="them",
                    text=f"You're not connected to @{body.to}. Text connect @{body.to} to start.",
                )
                return mine
            if conversation["assignment_status"] != "active":
                mine = self._note(
                    fx,
                    number,
                    sender="me",
                    text=body.text,
                    media=media,
                    thread=identity["handle"],
                    conversation_id=conversation["id"],
                    status="failed",
                )
                self._note(
                    fx,
                    number,
                    sender="them",
                    text=f"You're no longer connected to @{identity['handle']}. Text connect "
                    f"@{identity['handle']} to reconnect.",
                )
                return mine
        else:
            conversation = self._store.one(
                "SELECT * FROM conversations "
                "WHERE remote_number = ? AND assignment_status = 'active' "
                "ORDER BY last_activity_at DESC, seq DESC LIMIT 1",
                (number,),
            )
            if conversation is None:
                mine = self._note(fx, number, sender="me", text=body.text, media=media)
                self._note(fx, number, sender="them", text=NOT_CONNECTED)
                return mine
            identity = self._core.identity(conversation["identity_id"])
            assert identity is not None
        return ("message", self._inbound(fx, identity, conversation, body.text, media))

    def _inbound(
        self,
        fx: Effects,
        identity: Row,
        conversation: Row,
        text: str | None,
        media: list[dict[str, Any]] | None,
        *,
        via_router: bool = False,
    ) -> str:
        number = conversation["remote_number"]
        is_blocked = blocked(self._store, identity, number, "inbound") is not None
        now = self._core.clock.now()
        message_id = new_id()
        self._store.insert(
            "messages",
            {
                "id": message_id,
                "conversation_id": conversation["id"],
                "identity_id": identity["id"],
                "assignment_id": conversation["assignment_id"],
                "direction": "inbound",
                "remote_number": number,
                "content": text,
                "media": json.dumps(media) if media else None,
                "status": "received",
                "is_blocked": int(is_blocked),
                "via_router": int(via_router),
                "created_at": now,
                "updated_at": now,
            },
        )
        self._store.run(
            "UPDATE conversations SET last_activity_at = ?, updated_at = ? WHERE id = ?",
            (now, now, conversation["id"]),
        )
        if not is_blocked:
            # Blocked inbound is kept for audit but never announced (§9).
            message_event(self._core, fx, "imessage.received", message_id)
        fx.messages.append(message_id)
        return message_id

    # Tapbacks

    def human_reaction(self, number: str, body: PhoneReaction) -> dict[str, Any]:
        """``POST /sim/v1/phones/{number}/reactions``: a swap replaces the human's last one."""
        message = self._core.message(str(body.message_id))
        if message is None or message["remote_number"] != number:
            raise not_found("Message not found in this phone's conversations")
        conversation = self._conversation(message["conversation_id"])
        identity = self._core.identity(message["identity_id"])
        assert identity is not None
        if conversation["assignment_status"] != "active":
            raise conflict(
                "conversation_released",
                f"this phone is no longer connected to @{identity['handle']}",
            )
        now = self._core.clock.now()
        values = {
            "id": new_id(),
            "message_id": message["id"],
            "conversation_id": conversation["id"],
            "identity_id": identity["id"],
            "assignment_id": conversation["assignment_id"],
            "direction": "inbound",
            "reaction": body.reaction,
            "custom_emoji": body.custom_emoji,
            "remote_number": number,
            "part_index": 0,
            "removed_at": None,
            "created_at": now,
            "updated_at": now,
        }
        if blocked(self._store, identity, number, "inbound") is not None:
            # §9: tapbacks from a blocked human are not recorded at all.
            return {"reaction": reaction_json(values)}
        with self._core.tx() as fx:
            self._store.run(
                "UPDATE reactions SET removed_at = ?, updated_at = ? WHERE message_id = ? "
                "AND direction = 'inbound' AND part_index = 0 AND removed_at IS NULL",
                (now, now, message["id"]),
            )
            self._store.insert("reactions", values)
            row = self._store.one("SELECT * FROM reactions WHERE id = ?", (values["id"],))
            assert row is not None
            data = {"message": None, "reaction": reaction_json(row)}
            self._core.delivery.fanout(
                fx, identity, "imessage.reaction_received", conversation["id"], data
            )
            fx.messages.append(message["id"])
        return {"reaction": reaction_json(row)}
