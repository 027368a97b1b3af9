"""Identities, their API keys and signing keys, and their contact rules."""

from __future__ import annotations

from typing import Any

from imbot.sim.auth import KeyRing, Principal, require_admin
from imbot.sim.core import Core, new_id
from imbot.sim.delivery import mint_signing_key
from imbot.sim.params import Query
from imbot.sim.render import contact_rule_json, identity_json
from imbot.sim.responses import ApiError, conflict, not_found, unprocessable
from imbot.sim.store import Row
from imbot.sim.validation import IdentityCreate, IdentityUpdate, RuleCreate, RuleUpdate

__all__ = ["Accounts"]

_RULE_DIRECTIONS = ("inbound", "outbound", "both")


def _overlaps(a: str, b: str) -> bool:
    return a == b or "both" in (a, b)


class Accounts:
    """The identity, key and contact-rule endpoints.

    Args:
        core: the simulator's shared state.
        keys: the in-memory key ring to refresh when keys change.
    """

    def __init__(self, core: Core, keys: KeyRing) -> None:
        self._core = core
        self._store = core.store
        self._keys = keys

    def _json(self, row: Row) -> dict[str, Any]:
        return identity_json(row, self._core.organization_id)

    def addressed(self, principal: Principal, handle: str) -> Row:
        """The identity a path handle names, if the caller may address it.

        Raises:
            ApiError: 404 for an unknown handle, 403 when an identity key names another.
        """
        identity = self._core.identity_by_handle(handle)
        if identity is None:
            raise not_found(f"Identity @{handle.removeprefix('@')} not found")
        if principal.identity_id is not None and identity["id"] != principal.identity_id:
            raise ApiError(
                403,
                {
                    "error": "forbidden",
                    "message": "an identity-scoped key may only address its own identity",
                },
            )
        return identity

    # Identities

    def create_identity(self, principal: Principal, body: IdentityCreate) -> dict[str, Any]:
        """``POST /identities`` (admin only)."""
        require_admin(principal)
        if self._core.identity_by_handle(body.agent_handle) is not None:
            raise conflict(
                "agent_handle_unavailable",
                f"the handle @{body.agent_handle} is taken",
                code="agent_handle_unavailable",
                blocking_namespace="identities",
            )
        if body.claim_imessage_number:
            raise self.no_dedicated_lines()
        now = self._core.clock.now()
        identity_id = new_id()
        self._store.insert(
            "identities",
            {
                "id": identity_id,
                "handle": body.agent_handle,
                "display_name": body.display_name or body.agent_handle,
                "description": body.description,
                "imessage_enabled": int(body.imessage_enabled),
                "filter_mode": "blacklist",
                "contact_sharing_enabled": int(body.contact_sharing_enabled),
                "created_at": now,
                "updated_at": now,
            },
        )
        row = self._core.identity(identity_id)
        assert row is not None
        return self._json(row)

    @staticmethod
    def no_dedicated_lines() -> ApiError:
        """The 402 answer to any dedicated-line claim: the simulator has none."""
        return ApiError(
            402,
            {
                "error": "dedicated_imessage_number_quota_exceeded",
                "message": "the simulator only offers the shared router; dedicated lines "
                "are not available",
                "number_type": "dedicated_outbound",
                "limit": 0,
                "current": 0,
                "upgrade_url": None,
                "contact_email": None,
            },
        )

    def list_identities(self, principal: Principal) -> list[dict[str, Any]]:
        """``GET /identities``: all for admin, its own for an identity key."""
        if principal.identity_id is None:
            rows = self._store.all("SELECT * FROM identities ORDER BY seq")
        else:
            rows = self._store.all(
                "SELECT * FROM identities WHERE id = ?", (principal.identity_id,)
            )
        return [self._json(row) for row in rows]

    def get_identity(self, principal: Principal, handle: str) -> dict[str, Any]:
        """``GET /identities/{handle}``."""
        return self._json(self.addressed(principal, handle))

    def update_identity(
        self, principal: Principal, handle: str, body: IdentityUpdate
    ) -> dict[str, Any]:
        """``PATCH /identities/{handle}``: only the fields given change."""
        identity = self.addressed(principal, handle)
        given = body.model_fields_set
        changes: dict[str, Any] = {}
        mode = body.filter_mode
        if mode is not None:
            require_admin(principal)
            changes["filter_mode"] = mode
        if "imessage_number_id" in given and body.imessage_number_id is not None:
            raise not_found("Dedicated iMessage line not found (the simulator has none)")
        if body.claim_imessage_number:
            raise self.no_dedicated_lines()
        for name in ("display_name", "description"):
            if name in given:
                changes[name] = getattr(body, name)
        for flag in ("imessage_enabled", "contact_sharing_enabled"):
            value = getattr(body, flag)
            if flag in given:
                if value is None:
                    raise unprocessable(
                        ["body", flag], "Input should be a valid boolean", "bool_type"
                    )
                changes[flag] = int(value)
        if changes:
            changes["updated_at"] = self._core.clock.now()
            self._store.update("identities", identity["id"], changes)
            self._core.identity_changed(identity["id"])
        row = self._core.identity(identity["id"])
        assert row is not None
        return self._json(row)

    def delete_identity(self, principal: Principal, handle: str) -> None:
        """``DELETE /identities/{handle}`` (admin only): cascades, revokes its keys."""
        require_admin(principal)
        identity = self.addressed(principal, handle)
        identity_id = identity["id"]
        with self._store.transaction():
            for table in ("conversations", "assignments", "messages", "reactions", "contact_rules"):
                self._store.run(f"DELETE FROM {table} WHERE identity_id = ?", (identity_id,))
            self._store.run(
                "DELETE FROM outbox WHERE subscription_id IN "
                "(SELECT id FROM subscriptions WHERE identity_id = ?)",
                (identity_id,),
            )
            self._store.run("DELETE FROM subscriptions WHERE identity_id = ?", (identity_id,))
            self._store.run("DELETE FROM idempotency WHERE identity_id = ?", (identity_id,))
            self._store.run("DELETE FROM api_keys WHERE identity_id = ?", (identity_id,))
            self._store.run("DELETE FROM identities WHERE id = ?", (identity_id,))
        self._core.identity_changed(identity_id)
        self._core.delivery.invalidate(identity_id)
        self._keys.reload()

    # Keys

    def mint_api_key(self, principal: Principal, handle: str, label: str | None) -> dict[str, Any]:
        """``POST /sim/v1/identities/{handle}/api-keys`` (admin only)."""
        require_admin(principal)
        identity = self.addressed(principal, handle)
        key = self._core.mint_identity_key(identity["id"], label or f"{identity['handle']} key")
        self._keys.reload()
        return {
            "api_key": key,
            "agent_identity_id": identity["id"],
            "agent_handle": identity["handle"],
        }

    def rotate_signing_key(self, principal: Principal, handle: str) -> dict[str, Any]:
        """``POST /identities/{handle}/signing-key``: create or replace; shown once."""
        identity = self.addressed(principal, handle)
        return self.set_signing_key(identity)

    def set_signing_key(self, identity: Row) -> dict[str, Any]:
        """Mint a new signing key for ``identity``; return ``{signing_key, created_at}``."""
        key = mint_signing_key()
        now = self._core.clock.now()
        self._store.update(
            "identities", identity["id"], {"signing_key": key, "signing_key_created_at": now}
        )
        self._core.identity_changed(identity["id"])
        self._core.delivery.invalidate(identity["id"])
        return {"signing_key": key, "created_at": now}

    def signing_key_status(self, principal: Principal, handle: str) -> dict[str, Any]:
        """``GET /identities/{handle}/signing-key``."""
        identity = self.addressed(principal, handle)
        return {
            "configured": identity["signing_key"] is not None,
            "created_at": identity["signing_key_created_at"],
        }

    def legacy_signing_key(self, principal: Principal, *, rotate: bool) -> dict[str, Any]:
        """The deprecated org route ``/signing-keys``."""
        if principal.identity_id is not None:
            identity = self._core.identity(principal.identity_id)
            assert identity is not None
            if rotate:
                return self.set_signing_key(identity)
            return {
                "configured": identity["signing_key"] is not None,
                "created_at": identity["signing_key_created_at"],
            }
        if rotate:
            raise conflict(
                "per_identity_signing_keys",
                "signing keys belong to identities; use "
                "POST /api/v1/identities/{handle}/signing-key",
            )
        latest = self._store.one(
            "SELECT signing_key_created_at FROM identities WHERE signing_key IS NOT NULL "
            "ORDER BY signing_key_created_at DESC LIMIT 1"
        )
        return {
            "configured": latest is not None,
            "created_at": latest["signing_key_created_at"] if latest else None,
        }

    # Contact rules

    def list_rules(self, principal: Principal, handle: str, query: Query) -> list[dict[str, Any]]:
        """``GET /identities/{handle}/contact-rules``: newest first."""
        identity = self.addressed(principal, handle)
        return self._rules(query, identity["id"])

    def list_all_rules(self, principal: Principal, query: Query) -> list[dict[str, Any]]:
        """``GET /contact-rules`` (admin only): every identity's rules."""
        require_admin(principal)
        identity_id = query.uuid("agent_identity_id")
        return self._rules(query, identity_id)

    def _rules(self, query: Query, identity_id: str | None) -> list[dict[str, Any]]:
        action = query.choice("action", ("allow", "block"))
        match_type = query.choice("match_type", ("exact_number",))
        direction = query.choice("direction", _RULE_DIRECTIONS)
        limit, offset = query.limit(), query.offset()
        where: list[str] = []
        params: list[Any] = []
        if identity_id is not None:
            where.append("identity_id = ?")
            params.append(identity_id)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        if match_type is not None:
            where.append("match_type = ?")
            params.append(match_type)
        if direction == "both":
            where.append("direction = 'both'")
        elif direction is not None:
            # A one-sided filter includes the rules that cover both sides.
            where.append("direction IN (?, 'both')")
            params.append(direction)
        sql = "SELECT * FROM contact_rules"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
        return [contact_rule_json(row) for row in self._store.all(sql, [*params, limit, offset])]

    def _duplicate(
        self, identity_id: str, target: str, direction: str, exclude: str | None = None
    ) -> None:
        for rule in self._store.all(
            "SELECT id, direction FROM contact_rules WHERE identity_id = ? AND match_target = ?",
            (identity_id, target),
        ):
            if rule["id"] != exclude and _overlaps(rule["direction"], direction):
                raise conflict(
                    "duplicate_contact_rule",
                    f"a rule already covers {target} for that direction",
                    existing_rule_id=rule["id"],
                )

    def create_rule(self, principal: Principal, handle: str, body: RuleCreate) -> dict[str, Any]:
        """``POST /identities/{handle}/contact-rules``: starts ``active``."""
        identity = self.addressed(principal, handle)
        direction = body.direction or "both"
        self._duplicate(identity["id"], body.match_target, direction)
        rule_id = new_id()
        now = self._core.clock.now()
        self._store.insert(
            "contact_rules",
            {
                "id": rule_id,
                "identity_id": identity["id"],
                "action": body.action,
                "match_type": body.match_type,
                "match_target": body.match_target,
                "status": "active",
                "direction": direction,
                "created_at": now,
                "updated_at": now,
            },
        )
        return self.get_rule(principal, handle, rule_id)

    def _rule(self, identity: Row, rule_id: str) -> Row:
        row = self._store.one(
            "SELECT * FROM contact_rules WHERE id = ? AND identity_id = ?",
            (rule_id, identity["id"]),
        )
        if row is None:
            raise not_found("Contact rule not found")
        return row

    def get_rule(self, principal: Principal, handle: str, rule_id: str) -> dict[str, Any]:
        """``GET /identities/{handle}/contact-rules/{id}``."""
        return contact_rule_json(self._rule(self.addressed(principal, handle), rule_id))

    def update_rule(
        self, principal: Principal, handle: str, rule_id: str, body: RuleUpdate
    ) -> dict[str, Any]:
        """``PATCH`` a rule (admin only).

        ``apply_to`` changes one side of a two-sided rule: the rule keeps the other
        side, and a new rule with the new action covers ``apply_to``; the answer is
        the rule that now covers ``apply_to``.
        """
        require_admin(principal)
        identity = self.addressed(principal, handle)
        rule = self._rule(identity, rule_id)
        now = self._core.clock.now()
        if body.apply_to is not None and rule["direction"] != body.apply_to:
            if rule["direction"] != "both":
                raise unprocessable(
                    ["body", "apply_to"], f"this rule covers {rule['direction']} only"
                )
            other = "outbound" if body.apply_to == "inbound" else "inbound"
            new_rule = new_id()
            with self._store.transaction():
                self._store.update(
                    "contact_rules", rule_id, {"direction": other, "updated_at": now}
                )
                self._store.insert(
                    "contact_rules",
                    {
                        "id": new_rule,
                        "identity_id": identity["id"],
                        "action": body.action,
                        "match_type": rule["match_type"],
                        "match_target": rule["match_target"],
                        "status": body.status or rule["status"],
                        "direction": body.apply_to,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            return self.get_rule(principal, handle, new_rule)
        changes: dict[str, Any] = {}
        if body.direction is not None and body.direction != rule["direction"]:
            self._duplicate(identity["id"], rule["match_target"], body.direction, exclude=rule_id)
            changes["direction"] = body.direction
        if body.action is not None:
            changes["action"] = body.action
        if body.status is not None:
            changes["status"] = body.status
        if changes:
            changes["updated_at"] = now
            self._store.update("contact_rules", rule_id, changes)
        return self.get_rule(principal, handle, rule_id)

    def delete_rule(self, principal: Principal, handle: str, rule_id: str) -> None:
        """``DELETE`` a rule (admin only)."""
        require_admin(principal)
        identity = self.addressed(principal, handle)
        self._rule(identity, rule_id)
        self._store.run("DELETE FROM contact_rules WHERE id = ?", (rule_id,))
