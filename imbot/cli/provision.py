"""Wire an agent identity to a bot's webhook: iMessage on, one subscription to the five events.

Shared by ``imbot setup`` (real Inkbox) and ``imbot dev`` (the simulator). Every step is
idempotent: running it again finds what the last run made and changes only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imbot.errors import NotFound
from imbot.events import EVENT_TYPES

if TYPE_CHECKING:
    from imbot.client.client import InkboxClient
    from imbot.models import Identity, WebhookSubscription

__all__ = ["Subscribed", "ensure_identity", "ensure_subscription"]


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What ``ensure_subscription`` did.

    Attributes:
        subscription: the subscription that now delivers the five events to the URL.
        action: ``created``, ``updated`` (event types added), ``moved`` (URL changed) or
            ``unchanged``.
        previous_url: the URL a moved subscription had before.
        signing_key: the identity's first signing key, when creating the subscription
            minted it (shown only this once); ``None`` otherwise.
        others: other subscriptions of the identity that also take iMessage events, left as
            they are (each gets its own copy of every event).
    """

    subscription: WebhookSubscription
    action: str
    previous_url: str | None = None
    signing_key: str | None = None
    others: list[WebhookSubscription] = field(default_factory=list)


async def ensure_identity(
    client: InkboxClient, handle: str, *, create: bool
) -> tuple[Identity, str]:
    """Find (or create) the identity and make sure iMessage is on.

    Args:
        client: a client whose key may see (or create) the identity.
        handle: the agent handle, with or without ``@``.
        create: create the identity when it does not exist (the simulator); otherwise
            ``NotFound`` propagates.

    Returns:
        The identity and what was done: ``created``, ``enabled`` or ``unchanged``.

    Raises:
        NotFound: no such identity and ``create`` is false.
    """
    handle = handle.removeprefix("@")
    try:
        identity = await client.get_identity(handle)
    except NotFound:
        if not create:
            raise
        identity = await client.create_identity(handle, imessage_enabled=True)
        return identity, "created"
    if identity.imessage_enabled:
        return identity, "unchanged"
    return await client.update_identity(handle, imessage_enabled=True), "enabled"


def _imessage(sub: WebhookSubscription) -> bool:
    return any(t.startswith("imessage.") for t in sub.event_types)


def _with_events(sub: WebhookSubscription) -> list[str]:
    """The five iMessage events, then whatever else the subscription already takes."""
    return [*EVENT_TYPES, *(t for t in sub.event_types if t not in EVENT_TYPES)]


async def ensure_subscription(client: InkboxClient, identity: Identity, url: str) -> Subscribed:
    """Make one subscription of the identity deliver all five iMessage events to ``url``.

    In order: a subscription already at ``url`` gets any missing event types; else the
    identity's only iMessage-only subscription is moved to ``url`` (a bot that changed
    address); else a new subscription is created.

    Args:
        client: a client whose key may manage the identity's subscriptions.
        identity: the identity that owns the subscription.
        url: where the bot receives webhooks.

    Returns:
        What was done; see ``Subscribed``.
    """
    subs = await client.list_subscriptions(agent_identity_id=identity.id)
    at_url = [s for s in subs if s.url == url]
    if at_url:
        sub = next((s for s in at_url if _imessage(s)), at_url[0])
        others = [s for s in subs if s is not sub and _imessage(s)]
        wanted = _with_events(sub)
        if set(wanted) == set(sub.event_types):
            return Subscribed(sub, "unchanged", others=others)
        updated = await client.update_subscription(sub.id, event_types=wanted)
        return Subscribed(updated, "updated", others=others)
    movable = [s for s in subs if s.event_types and all(t in EVENT_TYPES for t in s.event_types)]
    if len(movable) == 1:
        old = movable[0]
        moved = await client.update_subscription(old.id, url=url, event_types=list(EVENT_TYPES))
        others = [s for s in subs if s is not old and _imessage(s)]
        return Subscribed(moved, "moved", previous_url=old.url, others=others)
    created = await client.create_subscription(
        agent_identity_id=identity.id, url=url, event_types=EVENT_TYPES
    )
    others = [s for s in subs if _imessage(s)]
    return Subscribed(created, "created", signing_key=created.signing_key, others=others)
