"""Webhook subscriptions and the delivery log (``/api/v1/webhooks/...``)."""

from __future__ import annotations

import json
from typing import Any

from imbot.sim.accounts import Accounts
from imbot.sim.auth import Principal
from imbot.sim.core import Core, new_id
from imbot.sim.params import Query
from imbot.sim.render import subscription_json
from imbot.sim.responses import ApiError, conflict, not_found, unprocessable
from imbot.sim.store import Row
from imbot.sim.validation import EVENT_CATALOG, SubscriptionCreate, SubscriptionUpdate

__all__ = ["EVENT_TYPES", "Subscriptions"]

EVENT_TYPES = EVENT_CATALOG

_MAX_ACTIVE = 20


class Subscriptions:
    """Subscription CRUD, the deliveries log and replays.

    Args:
        core: the simulator's shared state.
        accounts: used to mint the identity's first signing key.
    """

    def __init__(self, core: Core, accounts: Accounts) -> None:
        self._core = core
        self._store = core.store
        self._accounts = accounts

    def _json(self, row: Row) -> dict[str, Any]:
        return subscription_json(row, self._core.organization_id)

    def _owned(self, principal: Principal, subscription_id: str) -> Row:
        row = self._store.one("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,))
        if row is None or (
            principal.identity_id is not None and row["identity_id"] != principal.identity_id
        ):
            raise not_found("Webhook subscription not found")
        return row

    def _identity(self, principal: Principal, identity_id: str) -> Row:
        identity = self._core.identity(identity_id)
        if identity is None:
            raise not_found("Agent identity not found")
        if principal.identity_id is not None and principal.identity_id != identity_id:
            raise ApiError(
                403,
                {
                    "error": "forbidden",
                    "message": "an identity-scoped key may only manage its own subscriptions",
                },
            )
        return identity

    def _check_overlap(
        self, identity_id: str, url: str, event_types: list[str], exclude: str | None = None
    ) -> None:
        for row in self._store.all(
            "SELECT id, event_types FROM subscriptions WHERE identity_id = ? AND url = ? "
            "AND status = 'active'",
            (identity_id, url),
        ):
            if row["id"] != exclude and set(json.loads(row["event_types"])) & set(event_types):
                raise conflict(
                    "overlapping_subscription",
                    "another subscription of this identity already sends some of these events "
                    "to this URL",
                    existing_subscription_id=row["id"],
                )

    def create(self, principal: Principal, body: SubscriptionCreate) -> dict[str, Any]:
        """``POST /webhooks/subscriptions``; mints the identity's first signing key."""
        assert body.agent_identity_id is not None
        identity = self._identity(principal, str(body.agent_identity_id))
        active = self._store.scalar(
            "SELECT COUNT(*) FROM subscriptions WHERE identity_id = ? AND status = 'active'",
            (identity["id"],),
        )
        if active >= _MAX_ACTIVE:
            raise conflict(
                "subscription_limit_reached",
                f"an identity may have at most {_MAX_ACTIVE} active subscriptions",
            )
        self._check_overlap(identity["id"], body.url, body.event_types)
        now = self._core.clock.now()
        sub_id = new_id()
        with self._store.transaction():
            signing_key = None
            if identity["signing_key"] is None:
                signing_key = self._accounts.set_signing_key(identity)["signing_key"]
            self._store.insert(
                "subscriptions",
                {
                    "id": sub_id,
                    "identity_id": identity["id"],
                    "url": body.url,
                    "event_types": json.dumps(body.event_types),
                    "auth_token": body.auth_token,
                    "context_config": json.dumps(body.context_config)
                    if body.context_config is not None
                    else None,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                },
            )
        self._core.delivery.invalidate(identity["id"])
        row = self._store.one("SELECT * FROM subscriptions WHERE id = ?", (sub_id,))
        assert row is not None
        return {**self._json(row), "signing_key": signing_key}

    def list(self, principal: Principal, query: Query) -> dict[str, Any]:
        """``GET /webhooks/subscriptions`` → ``{"subscriptions": [...]}``."""
        owners = [
            name
            for name in ("agent_identity_id", "mailbox_id", "phone_number_id")
            if query.get(name)
        ]
        if len(owners) > 1:
            raise unprocessable(
                ["query", owners[1]],
                "agent_identity_id, mailbox_id and phone_number_id are mutually exclusive",
            )
        query.choice("scope", ("identity",))
        for name in ("mailbox_id", "phone_number_id"):
            if query.uuid(name) is not None:
                return {"subscriptions": []}
        where = ["1 = 1"]
        params: list[Any] = []
        identity_id = query.uuid("agent_identity_id")
        if principal.identity_id is not None:
            if identity_id is not None and identity_id != principal.identity_id:
                return {"subscriptions": []}
            identity_id = principal.identity_id
        if identity_id is not None:
            where.append("identity_id = ?")
            params.append(identity_id)
        url = query.get("url")
        if url is not None:
            where.append("url = ?")
            params.append(url)
        rows = self._store.all(
            "SELECT * FROM subscriptions WHERE " + " AND ".join(where) + " ORDER BY seq", params
        )
        event_type = query.get("event_type")
        if event_type is not None:
            rows = [row for row in rows if event_type in json.loads(row["event_types"])]
        return {"subscriptions": [self._json(row) for row in rows]}

    def get(self, principal: Principal, subscription_id: str) -> dict[str, Any]:
        """``GET /webhooks/subscriptions/{id}``."""
        return self._json(self._owned(principal, subscription_id))

    def update(
        self, principal: Principal, subscription_id: str, body: SubscriptionUpdate
    ) -> dict[str, Any]:
        """``PATCH /webhooks/subscriptions/{id}``: only the fields given change."""
        row = self._owned(principal, subscription_id)
        given = body.model_fields_set
        changes: dict[str, Any] = {}
        url = body.url if "url" in given and body.url is not None else row["url"]
        event_types = (
            body.event_types
            if "event_types" in given and body.event_types is not None
            else json.loads(row["event_types"])
        )
        if "url" in given or "event_types" in given:
            self._check_overlap(row["identity_id"], url, event_types, exclude=subscription_id)
            changes["url"] = url
            changes["event_types"] = json.dumps(event_types)
        if "context_config" in given:
            changes["context_config"] = (
                json.dumps(body.context_config) if body.context_config is not None else None
            )
        if "auth_token" in given:
            changes["auth_token"] = body.auth_token
        if changes:
            changes["updated_at"] = self._core.clock.now()
            self._store.update("subscriptions", subscription_id, changes)
            self._core.delivery.invalidate(row["identity_id"])
        return self.get(principal, subscription_id)

    def delete(self, principal: Principal, subscription_id: str) -> None:
        """``DELETE /webhooks/subscriptions/{id}``: deliveries stop at once."""
        row = self._owned(principal, subscription_id)
        with self._store.transaction():
            self._store.run("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
            self._store.run("DELETE FROM outbox WHERE subscription_id = ?", (subscription_id,))
        self._core.delivery.invalidate(row["identity_id"])

    @staticmethod
    def catalog() -> dict[str, Any]:
        """``GET /webhooks/catalog``: the events the simulator fires."""
        return {
            "supports_identity_subscriptions": True,
            "event_types": [{"event_type": name, "channel": "imessage"} for name in EVENT_TYPES],
        }

    # Deliveries

    def _delivery_json(self, row: Row) -> dict[str, Any]:
        active = row["sub_status"] == "active"
        selects = active and row["event_type"] in json.loads(row["sub_event_types"] or "[]")
        return {
            "id": row["id"],
            "organization_id": self._core.organization_id,
            "webhook_subscription_id": row["subscription_id"],
            "agent_identity_id": row["identity_id"],
            "phone_number_id": None,
            "event_id": row["event_id"],
            "event_type": row["event_type"],
            "url": row["url"],
            # The raw body exactly as signed and sent (a string, as the SDKs type it), so
            # it can be verified again with the headers of that attempt.
            "request_payload": row["body"],
            "response_status": row["response_status"],
            "response_body": row["response_body"],
            "error_detail": row["error_detail"],
            "duration_ms": row["duration_ms"],
            "success": bool(row["success"]),
            "attempt": row["attempt"],
            "is_replay": bool(row["is_replay"]),
            "replayable": bool(selects),
            "replay_unavailable_reason": None if selects else "subscription_inactive",
            "created_at": row["created_at"],
        }

    _DELIVERY_SELECT = (
        "SELECT d.*, e.body, s.status AS sub_status, s.event_types AS sub_event_types "
        "FROM deliveries d LEFT JOIN events e ON e.id = d.event_id "
        "LEFT JOIN subscriptions s ON s.id = d.subscription_id"
    )

    def deliveries(self, principal: Principal, query: Query) -> dict[str, Any]:
        """``GET /webhooks/deliveries`` → ``{"deliveries": [...]}``, newest first."""
        # Attempts already made are listed even if their batch was not written yet.
        self._core.delivery.flush()
        where = ["1 = 1"]
        params: list[Any] = []
        subscription_id = query.uuid("subscription_id")
        if query.uuid("phone_number_id") is not None:
            return {"deliveries": []}
        if subscription_id is not None:
            where.append("d.subscription_id = ?")
            params.append(subscription_id)
        if principal.identity_id is not None:
            where.append("d.identity_id = ?")
            params.append(principal.identity_id)
        event_type = query.get("event_type")
        if event_type is not None:
            where.append("d.event_type = ?")
            params.append(event_type)
        success = query.flag("success")
        if success is not None:
            where.append("d.success = ?")
            params.append(int(success))
        limit, offset = query.limit(), query.offset()
        rows = self._store.all(
            self._DELIVERY_SELECT
            + " WHERE "
            + " AND ".join(where)
            + " ORDER BY d.seq DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return {"deliveries": [self._delivery_json(row) for row in rows]}

    def _delivery(self, principal: Principal, delivery_id: str) -> Row:
        row = self._store.one(self._DELIVERY_SELECT + " WHERE d.id = ?", (delivery_id,))
        if row is None or (
            principal.identity_id is not None and row["identity_id"] != principal.identity_id
        ):
            raise not_found("Webhook delivery not found")
        return row

    async def replay(self, principal: Principal, delivery_id: str) -> dict[str, Any]:
        """``POST /webhooks/deliveries/{id}/replay``: same ``evt_`` id, fresh signature."""
        row = self._delivery(principal, delivery_id)
        sub = self._store.one("SELECT * FROM subscriptions WHERE id = ?", (row["subscription_id"],))
        event = self._store.one("SELECT * FROM events WHERE id = ?", (row["event_id"],))
        if (
            sub is None
            or event is None
            or sub["status"] != "active"
            or event["event_type"] not in json.loads(sub["event_types"])
        ):
            raise conflict(
                "replay_unavailable",
                "the subscription is gone or no longer selects this event",
            )
        new_delivery = await self._core.delivery.replay(sub["id"], event)
        return self._delivery_json(self._delivery(principal, new_delivery))
