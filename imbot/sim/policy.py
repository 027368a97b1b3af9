"""Who may text whom: contact rules under the identity's filter mode (§9 of the wire doc)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from imbot.sim.responses import ApiError
from imbot.sim.store import Row, Store

__all__ = ["Block", "blocked", "recipient_blocked"]

Side = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class Block:
    """Why a number is blocked for an identity.

    Attributes:
        rule_id: the blocking rule, or ``None`` when the whitelist default blocks.
        reason: ``blocked_by_contact_rule`` or ``not_on_whitelist``.
    """

    rule_id: str | None
    reason: str


def blocked(store: Store, identity: Row, number: str, side: Side) -> Block | None:
    """Return why ``number`` is blocked on ``side`` for ``identity``, or ``None``.

    Blacklist mode passes everyone but an active ``block`` rule; whitelist mode passes
    only an active ``allow`` rule. Paused rules do nothing; a rule covers its own
    direction and ``both``.
    """
    rules = store.all(
        "SELECT id, action, direction FROM contact_rules "
        "WHERE identity_id = ? AND match_target = ? AND status = 'active' ORDER BY seq",
        (identity["id"], number),
    )
    covering = [rule for rule in rules if rule["direction"] in (side, "both")]
    for rule in covering:
        if rule["action"] == "block":
            return Block(rule["id"], "blocked_by_contact_rule")
    if identity["filter_mode"] == "whitelist" and not any(
        rule["action"] == "allow" for rule in covering
    ):
        return Block(None, "not_on_whitelist")
    return None


def recipient_blocked(block: Block, number: str) -> ApiError:
    """The 403 ``recipient_blocked`` answer for a blocked outbound send or tapback."""
    message = (
        f"{number} is blocked by a contact rule for this identity"
        if block.rule_id
        else f"{number} is not on this identity's whitelist"
    )
    detail: dict[str, Any] = {
        "error": "recipient_blocked",
        "message": message,
        "matched_rule_id": block.rule_id,
        "address": number,
        "reason": block.reason,
    }
    return ApiError(403, detail)
