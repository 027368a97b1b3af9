"""What a webhook envelope's ``data`` says about the remote party (§12.4).

Inkbox resolves the conversation's remote number against the identity's contact book
(``data.contacts``) and against the organisation's agent identities
(``data.agent_identities``: set when the remote party is itself an agent identity). In
the simulator a phone becomes a known contact once it is given a name or memories
(``PUT /sim/v1/phones/{number}``), and stands for another agent when given its
``agent_handle``.
"""

from __future__ import annotations

from typing import Any

from imbot.sim.core import Core
from imbot.sim.render import contacts_json

__all__ = ["event_data"]


def event_data(core: Core, data: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` with ``contacts`` and ``agent_identities`` for its remote party.

    Both lists are always present, possibly empty.

    Args:
        core: the simulator's shared state.
        data: the event's ``message`` and ``reaction`` (one of them set).
    """
    item = data.get("message") or data.get("reaction") or {}
    number = item.get("remote_number")
    phone = core.phone(number) if number else None
    identities: list[dict[str, Any]] = []
    if phone is not None and phone["agent_handle"]:
        other = core.identity_by_handle(phone["agent_handle"])
        if other is not None:
            identities.append(
                {
                    "id": other["id"],
                    "agent_handle": other["handle"],
                    "display_name": other["display_name"],
                }
            )
    return {**data, "contacts": contacts_json(phone), "agent_identities": identities}
