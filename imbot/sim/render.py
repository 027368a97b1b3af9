"""Wire JSON for the API's resources, drawn from stored rows (§7 of the wire doc)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from imbot.sim.store import Row

RowLike = Row | Mapping[str, Any]

_FAILED = ("error", "declined")

__all__ = [
    "assignment_json",
    "contact_rule_json",
    "contacts_json",
    "conversation_json",
    "identity_json",
    "media_items",
    "message_json",
    "phone_json",
    "reaction_json",
    "subscription_json",
    "webhook_message",
]


def media_items(raw: str | None) -> list[dict[str, Any]] | None:
    """Decode a stored media list (``None`` when there is none)."""
    if not raw:
        return None
    items: list[dict[str, Any]] = json.loads(raw)
    return items or None


def _reaction_embed(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "direction": row["direction"],
        "reaction": row["reaction"],
        "custom_emoji": row["custom_emoji"],
        "remote_number": row["remote_number"],
        "part_index": row["part_index"],
        "created_at": row["created_at"],
    }


def _recipients(row: Row) -> list[dict[str, Any]] | None:
    if row["direction"] != "outbound":
        return None
    failed = row["status"] in _FAILED
    return [
        {
            "remote_number": row["remote_number"],
            "delivery_status": row["status"],
            "service": None if failed else row["service"],
            "error_code": row["error_code"],
            "error_message": row["error_message"],
            "error_reason": row["error_reason"],
            "error_detail": row["error_detail"],
            "sent_at": row["sent_at"],
            "delivered_at": row["delivered_at"],
            "failed_at": row["failed_at"],
        }
    ]


def message_json(row: Row, reactions: list[Row] | None = None) -> dict[str, Any]:
    """Render a message row (§7.1) with its live tapbacks, oldest first."""
    outbound = row["direction"] == "outbound"
    was_downgraded: bool | None
    if outbound:
        status = row["status"]
        sms = row["service"] == "sms"
        was_downgraded = sms if status in ("sent", "delivered") else None
        # §18: no receipt follows a delivered, failed or SMS message.
        final = status in _FAILED or status == "delivered" or (sms and status == "sent")
    else:
        was_downgraded = False
        final = None
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "assignment_id": row["assignment_id"],
        "direction": row["direction"],
        "remote_number": row["remote_number"],
        "content": row["content"],
        "message_type": "message",
        "service": row["service"],
        "send_style": row["send_style"],
        "media": media_items(row["media"]),
        "was_downgraded": was_downgraded,
        "status": row["status"],
        "error_code": row["error_code"],
        "error_message": row["error_message"],
        "error_reason": row["error_reason"],
        "error_detail": row["error_detail"],
        "is_read": bool(row["is_read"]),
        "is_blocked": bool(row["is_blocked"]),
        "recipients": _recipients(row),
        "reactions": [_reaction_embed(r) for r in reactions] if reactions else None,
        "is_group": False,
        "delivery_final": final,
        "reply_to_message_id": row["reply_to_message_id"],
        "thread_id": row["thread_id"],
        "thread_root_message_id": row["thread_root_message_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def webhook_message(row: Row, reactions: list[Row] | None = None) -> dict[str, Any]:
    """A message as webhooks carry it: like the API's, without ``is_blocked``."""
    data = message_json(row, reactions)
    del data["is_blocked"]
    data["sender_access"] = "direct"
    return data


def reaction_json(row: RowLike) -> dict[str, Any]:
    """Render a reaction row (§7.4)."""
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "assignment_id": row["assignment_id"],
        "target_message_id": row["message_id"],
        "direction": row["direction"],
        "reaction": row["reaction"],
        "custom_emoji": row["custom_emoji"],
        "remote_number": row["remote_number"],
        "part_index": row["part_index"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def conversation_json(row: Row) -> dict[str, Any]:
    """Render a conversation row (§7.2, the single-conversation shape)."""
    return {
        "id": row["id"],
        "agent_identity_id": row["identity_id"],
        "assignment_id": row["assignment_id"],
        "assignment_status": row["assignment_status"],
        "remote_number": row["remote_number"],
        "is_group": False,
        "participants": None,
        "group_creation_status": None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def assignment_json(row: Row, organization_id: str) -> dict[str, Any]:
    """Render an assignment row (§7.3)."""
    return {
        "id": row["id"],
        "remote_number": row["remote_number"],
        "agent_identity_id": row["identity_id"],
        "organization_id": organization_id,
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "released_at": row["released_at"],
    }


def contact_rule_json(row: Row) -> dict[str, Any]:
    """Render a contact rule row (§7.6)."""
    return {
        "id": row["id"],
        "agent_identity_id": row["identity_id"],
        "action": row["action"],
        "match_type": row["match_type"],
        "match_target": row["match_target"],
        "status": row["status"],
        "direction": row["direction"],
        "contact": None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def identity_json(row: Row, organization_id: str) -> dict[str, Any]:
    """Render an identity row (§11); one filter mode stands for both directions."""
    mode = row["filter_mode"]
    return {
        "id": row["id"],
        "organization_id": organization_id,
        "agent_handle": row["handle"],
        "display_name": row["display_name"],
        "description": row["description"],
        "email_address": None,
        "imessage_enabled": bool(row["imessage_enabled"]),
        "imessage_filter_mode": mode,
        "phone_filter_mode": mode,
        "phone_inbound_filter_mode": mode,
        "phone_outbound_filter_mode": mode,
        "mail_filter_mode": "blacklist",
        "contact_sharing_enabled": bool(row["contact_sharing_enabled"]),
        "signing_key_configured": row["signing_key"] is not None,
        "signing_key_created_at": row["signing_key_created_at"],
        "imessage_number": None,
        "mailbox": None,
        "phone_number": None,
        "tunnel": None,
        "status": "active",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def subscription_json(row: Row, organization_id: str) -> dict[str, Any]:
    """Render a webhook subscription row (§12.1)."""
    return {
        "id": row["id"],
        "organization_id": organization_id,
        "agent_identity_id": row["identity_id"],
        "owner_identity_id": row["identity_id"],
        "mailbox_id": None,
        "phone_number_id": None,
        "url": row["url"],
        "event_types": json.loads(row["event_types"]),
        "status": row["status"],
        "context_config": json.loads(row["context_config"]) if row["context_config"] else None,
        "has_auth_token": row["auth_token"] is not None,
        "auth_token": row["auth_token"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def phone_json(row: Row | None) -> dict[str, Any]:
    """A phone's settings, as ``PUT /sim/v1/phones/{number}`` answers."""
    assert row is not None
    return {
        "number": row["number"],
        "unreachable": bool(row["unreachable"]),
        "error_code": row["error_code"],
        "delivery": row["delivery"],
        "name": row["contact_name"],
        "memories": json.loads(row["memories"]) if row["memories"] else [],
        "contact_id": row["contact_id"],
        "agent_handle": row["agent_handle"],
    }


def contacts_json(row: Row | None) -> list[dict[str, Any]]:
    """``data.contacts`` for a webhook about this phone: its card if it has one (§12.4)."""
    if row is None or row["contact_id"] is None:
        return []
    memories = json.loads(row["memories"]) if row["memories"] else []
    return [{"id": row["contact_id"], "name": row["contact_name"], "memories": memories}]
