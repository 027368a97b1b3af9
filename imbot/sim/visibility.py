"""Who may see what, and the checks every write to a conversation shares."""

from __future__ import annotations

from typing import Any

from imbot.sim.auth import Principal
from imbot.sim.core import Core
from imbot.sim.policy import blocked, recipient_blocked
from imbot.sim.render import message_json
from imbot.sim.responses import ApiError, bad_request, conflict, not_found
from imbot.sim.store import Row

__all__ = ["Visibility", "connect_command"]


def connect_command(handle: str) -> str:
    """The text a human sends the router to reach ``handle``."""
    return f"connect @{handle}"


class Visibility:
    """Scope checks for API keys, and the preconditions of conversation writes.

    Args:
        core: the simulator's shared state.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._store = core.store

    def scope(self, principal: Principal, agent_identity_id: str | None) -> Row | None:
        """The identity a list is narrowed to, or ``None`` for all (admin only).

        Raises:
            ApiError: 403 when an identity key names another identity, 404 for an
                unknown identity.
        """
        if principal.identity_id is not None:
            if agent_identity_id is not None and agent_identity_id != principal.identity_id:
                raise ApiError(
                    403,
                    {
                        "error": "forbidden",
                        "message": "an identity-scoped key may only read its own identity",
                    },
                )
            identity = self._core.identity(principal.identity_id)
            if identity is None:
                raise ApiError(401, "Invalid or missing API key")
            return identity
        if agent_identity_id is None:
            return None
        identity = self._core.identity(agent_identity_id)
        if identity is None:
            raise not_found("Agent identity not found")
        return identity

    def conversation_for(
        self, principal: Principal, conversation_id: str, asserted: str | None = None
    ) -> Row:
        """A conversation the caller may see, else 404."""
        row = self._core.conversation(conversation_id)
        if (
            row is None
            or (principal.identity_id is not None and row["identity_id"] != principal.identity_id)
            or (asserted is not None and row["identity_id"] != asserted)
        ):
            raise not_found("Conversation not found")
        return row

    def message_for(
        self, principal: Principal, message_id: str, asserted: str | None = None
    ) -> Row:
        """A message the caller may see, else 404 (identity keys never see blocked rows)."""
        row = self._core.message(message_id)
        if (
            row is None
            or (
                principal.identity_id is not None
                and (row["identity_id"] != principal.identity_id or row["is_blocked"])
            )
            or (asserted is not None and row["identity_id"] != asserted)
        ):
            raise not_found("Message not found")
        return row

    def require_enabled(self, identity: Row) -> None:
        """Refuse (400) an identity that has iMessage turned off."""
        if not identity["imessage_enabled"]:
            raise bad_request(
                f"iMessage is not enabled for @{identity['handle']}. Turn it on with "
                f'PATCH /api/v1/identities/{identity["handle"]} {{"imessage_enabled": true}}.'
            )

    def require_active(self, identity: Row, conversation: Row) -> None:
        """Refuse (409 ``conversation_released``) a released conversation."""
        if conversation["assignment_status"] != "active":
            command = connect_command(identity["handle"])
            raise conflict(
                "conversation_released",
                f"this conversation was released; {conversation['remote_number']} can reconnect "
                f"by texting '{command}' to {self._core.config.triage_number}",
                connect_command=command,
                router_number=self._core.config.triage_number,
            )

    def require_outbound_allowed(self, identity: Row, number: str) -> None:
        """Refuse (403 ``recipient_blocked``) a number the identity may not text."""
        block = blocked(self._store, identity, number, "outbound")
        if block is not None:
            raise recipient_blocked(block, number)

    def render_messages(self, rows: list[Row]) -> list[dict[str, Any]]:
        """Render message rows with their live reactions."""
        reactions = self._core.live_reactions([row["id"] for row in rows])
        return [message_json(row, reactions.get(row["id"])) for row in rows]
