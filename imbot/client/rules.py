"""Contact-rule endpoints of the client: allow or block numbers per identity.

Rules are managed at set-up or by an operator, not per message; they live apart from
``messaging`` so that module stays a readable list of what a bot does all day.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from imbot.client._request import (
    _BaseClient,
    check_page,
    enum_value,
    handle_segment,
    ignore_body,
    invalid,
    segment,
)
from imbot.errors import InvalidRequest
from imbot.models import (
    ContactRule,
    ContactRuleStatus,
    CreateContactRule,
    RuleAction,
    RuleDirection,
)

_RULES = TypeAdapter(list[ContactRule])


def _rules_path(handle: str, rule_id: str | None = None) -> str:
    path = f"/imessage/identities/{handle_segment(handle)}/contact-rules"
    return path if rule_id is None else f"{path}/{segment(rule_id)}"


class _ContactRuleEndpoints(_BaseClient):
    """Per-identity and organisation-wide contact-rule endpoints."""

    async def list_contact_rules(
        self,
        handle: str,
        *,
        action: RuleAction | str | None = None,
        direction: RuleDirection | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ContactRule]:
        """List one page of an identity's contact rules (active and paused), newest first.

        Args:
            handle: the identity's handle.
            action: only ``allow`` or only ``block`` rules.
            direction: ``inbound``/``outbound`` include ``both`` rules; ``both`` selects
                only two-way rules.
            limit: the page size, 1 to 200.
            offset: how many rows to skip.
        """
        check_page(limit, offset)
        query = _rule_filters(action, direction) | {"limit": limit, "offset": offset}
        path = _rules_path(handle)
        return await self._request("GET", path, _RULES.validate_json, query=query)

    def iter_contact_rules(
        self,
        handle: str,
        *,
        action: RuleAction | str | None = None,
        direction: RuleDirection | str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[ContactRule]:
        """Iterate over every contact rule of an identity (see ``list_contact_rules``)."""
        return self._pages(
            lambda limit, offset: self.list_contact_rules(
                handle, action=action, direction=direction, limit=limit, offset=offset
            ),
            page_size,
        )

    async def create_contact_rule(
        self,
        handle: str,
        *,
        action: RuleAction | str,
        match_target: str,
        direction: RuleDirection | str | None = None,
    ) -> ContactRule:
        """Allow or block one number for an identity.

        Args:
            handle: the identity's handle.
            action: ``allow`` or ``block``.
            match_target: the E.164 number.
            direction: ``inbound``, ``outbound`` or ``both`` (the default).

        Returns:
            The rule; matching rules may merge, so use the returned id and direction.

        Raises:
            InvalidRequest: bad action, number or direction; nothing was sent.
            DuplicateContactRule: a rule already covers the number (``existing_rule_id``).
        """
        try:
            rule = CreateContactRule(action=action, match_target=match_target, direction=direction)
        except ValidationError as exc:
            raise invalid("contact rule", exc) from None
        path = _rules_path(handle)
        # Not retried blindly: a repeat after a lost answer would report a duplicate.
        return await self._request(
            "POST",
            path,
            ContactRule.model_validate_json,
            json_body=rule.to_wire(),
            idempotent=False,
        )

    async def get_contact_rule(self, handle: str, rule_id: str) -> ContactRule:
        """Get one contact rule."""
        path = _rules_path(handle, rule_id)
        return await self._request("GET", path, ContactRule.model_validate_json)

    async def update_contact_rule(
        self,
        handle: str,
        rule_id: str,
        *,
        action: RuleAction | str | None = None,
        status: ContactRuleStatus | str | None = None,
        direction: RuleDirection | str | None = None,
    ) -> ContactRule:
        """Change a rule's action, status (pause or resume) or direction (admin keys).

        Raises:
            InvalidRequest: nothing to change, or an unknown value.
            Forbidden: the key is not an admin key.
        """
        body: dict[str, str] = {}
        if action is not None:
            body["action"] = enum_value(RuleAction, action, "action")
        if status is not None:
            body["status"] = enum_value(ContactRuleStatus, status, "status")
        if direction is not None:
            body["direction"] = enum_value(RuleDirection, direction, "direction")
        if not body:
            raise InvalidRequest("update_contact_rule needs action, status or direction")
        path = _rules_path(handle, rule_id)
        return await self._request("PATCH", path, ContactRule.model_validate_json, json_body=body)

    async def delete_contact_rule(self, handle: str, rule_id: str) -> None:
        """Delete a contact rule (admin keys)."""
        path = _rules_path(handle, rule_id)
        await self._request("DELETE", path, ignore_body)

    async def list_all_contact_rules(
        self,
        *,
        agent_identity_id: str | None = None,
        action: RuleAction | str | None = None,
        direction: RuleDirection | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ContactRule]:
        """List one page of the organisation's contact rules, over all identities (admin)."""
        check_page(limit, offset)
        query = _rule_filters(action, direction) | {
            "agent_identity_id": agent_identity_id,
            "limit": limit,
            "offset": offset,
        }
        return await self._request(
            "GET", "/imessage/contact-rules", _RULES.validate_json, query=query
        )

    def iter_all_contact_rules(
        self,
        *,
        agent_identity_id: str | None = None,
        action: RuleAction | str | None = None,
        direction: RuleDirection | str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[ContactRule]:
        """Iterate over every contact rule of the organisation (admin keys)."""
        return self._pages(
            lambda limit, offset: self.list_all_contact_rules(
                agent_identity_id=agent_identity_id,
                action=action,
                direction=direction,
                limit=limit,
                offset=offset,
            ),
            page_size,
        )


def _rule_filters(
    action: RuleAction | str | None, direction: RuleDirection | str | None
) -> dict[str, Any]:
    return {
        "action": None if action is None else enum_value(RuleAction, action, "action"),
        "direction": None
        if direction is None
        else enum_value(RuleDirection, direction, "direction"),
    }
