"""Provisioning endpoints: identities, signing keys and webhook subscriptions.

A bot calls these once, when it is provisioned (``imbot setup``), not per message; they live
apart from ``messaging`` so that module stays a readable list of what a bot does all day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter

from imbot.client._request import _BaseClient, enum_value, handle_segment, ignore_body, segment
from imbot.errors import InvalidRequest
from imbot.models import FilterMode, Identity, SigningKey, SigningKeyStatus, WebhookSubscription

_IDENTITIES = TypeAdapter(list[Identity])


class _SubscriptionList(BaseModel):
    subscriptions: list[WebhookSubscription]


class _ProvisioningEndpoints(_BaseClient):
    """Identity, signing-key and webhook-subscription endpoints."""

    async def create_identity(
        self,
        handle: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        imessage_enabled: bool = False,
    ) -> Identity:
        """Create an agent identity (``POST /api/v1/identities/``).

        Args:
            handle: the globally unique handle humans text (``connect @handle``); a leading
                ``@`` is dropped.
            display_name: the name shown for the identity.
            description: a free-text description.
            imessage_enabled: whether the router may connect humans to it right away.

        Raises:
            Conflict: the handle is taken.
        """
        body: dict[str, Any] = {
            "agent_handle": handle.removeprefix("@"),
            "imessage_enabled": imessage_enabled,
        }
        if display_name is not None:
            body["display_name"] = display_name
        if description is not None:
            body["description"] = description
        # Not idempotent: a blind retry after a lost answer would report the handle as taken.
        return await self._request(
            "POST", "/identities/", Identity.model_validate_json, json_body=body, idempotent=False
        )

    async def list_identities(self) -> list[Identity]:
        """List the identities this key can see (an identity key sees only its own)."""
        return await self._request("GET", "/identities/", _IDENTITIES.validate_json)

    async def get_identity(self, handle: str) -> Identity:
        """Get one identity by handle.

        Raises:
            NotFound: no such identity, or not visible to this key.
        """
        path = f"/identities/{handle_segment(handle)}"
        return await self._request("GET", path, Identity.model_validate_json)

    async def update_identity(
        self,
        handle: str,
        *,
        imessage_enabled: bool | None = None,
        filter_mode: FilterMode | str | None = None,
        display_name: str | None = None,
        description: str | None = None,
    ) -> Identity:
        """Change an identity's settings; only the arguments given are sent.

        Args:
            handle: the identity's handle.
            imessage_enabled: turn iMessage on or off for the identity.
            filter_mode: ``blacklist`` or ``whitelist`` (admin keys only).
            display_name: a new display name.
            description: a new description.

        Raises:
            InvalidRequest: no change was given.
            Forbidden: an identity key tried an admin-only change.
        """
        body: dict[str, Any] = {}
        if imessage_enabled is not None:
            body["imessage_enabled"] = imessage_enabled
        if filter_mode is not None:
            body["imessage_filter_mode"] = enum_value(FilterMode, filter_mode, "filter_mode")
        if display_name is not None:
            body["display_name"] = display_name
        if description is not None:
            body["description"] = description
        if not body:
            raise InvalidRequest("update_identity needs at least one setting to change")
        path = f"/identities/{handle_segment(handle)}"
        return await self._request("PATCH", path, Identity.model_validate_json, json_body=body)

    async def create_signing_key(self, handle: str) -> SigningKey:
        """Create or rotate the identity's webhook signing key; the plaintext is shown once.

        Store ``signing_key`` at once: it cannot be read again, only rotated.
        """
        path = f"/identities/{handle_segment(handle)}/signing-key"
        # Retrying is safe: a second rotation still ends with the key this call returns.
        return await self._request("POST", path, SigningKey.model_validate_json, json_body={})

    async def get_signing_key_status(self, handle: str) -> SigningKeyStatus:
        """Tell whether the identity has a signing key, and since when."""
        path = f"/identities/{handle_segment(handle)}/signing-key"
        return await self._request("GET", path, SigningKeyStatus.model_validate_json)

    async def create_subscription(
        self,
        *,
        agent_identity_id: str,
        url: str,
        event_types: Sequence[str],
        auth_token: str | None = None,
    ) -> WebhookSubscription:
        """Subscribe a URL to an identity's webhook events.

        Args:
            agent_identity_id: the identity that owns the subscription.
            url: where events are POSTed.
            event_types: the event types to deliver, e.g. ``imbot.events.EVENT_TYPES``.
            auth_token: sent back as ``Authorization: Bearer <token>`` on each delivery.

        Returns:
            The subscription; ``signing_key`` is set only when this call minted the
            identity's first key.

        Raises:
            InvalidRequest: ``event_types`` is empty or repeats a type.
            Conflict: the owner has too many subscriptions, or they overlap.
        """
        types = list(event_types)
        if not types or len(set(types)) != len(types):
            raise InvalidRequest("event_types must be a non-empty list of distinct types")
        body: dict[str, Any] = {
            "agent_identity_id": agent_identity_id,
            "url": url,
            "event_types": types,
        }
        if auth_token is not None:
            body["auth_token"] = auth_token
        return await self._request(
            "POST",
            "/webhooks/subscriptions",
            WebhookSubscription.model_validate_json,
            json_body=body,
            idempotent=False,
        )

    async def list_subscriptions(
        self,
        *,
        agent_identity_id: str | None = None,
        url: str | None = None,
        event_type: str | None = None,
    ) -> list[WebhookSubscription]:
        """List webhook subscriptions, optionally only an identity's, a URL's or an event's."""
        query = {"agent_identity_id": agent_identity_id, "url": url, "event_type": event_type}
        return await self._request(
            "GET", "/webhooks/subscriptions", _parse_subscriptions, query=query
        )

    async def get_subscription(self, subscription_id: str) -> WebhookSubscription:
        """Get one webhook subscription."""
        path = f"/webhooks/subscriptions/{segment(subscription_id)}"
        return await self._request("GET", path, WebhookSubscription.model_validate_json)

    async def update_subscription(
        self,
        subscription_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        auth_token: str | None = None,
    ) -> WebhookSubscription:
        """Change a subscription's URL, event types (the whole list) or auth token.

        Raises:
            InvalidRequest: nothing to change, or ``event_types`` empty or repeated.
        """
        body: dict[str, Any] = {}
        if url is not None:
            body["url"] = url
        if event_types is not None:
            types = list(event_types)
            if not types or len(set(types)) != len(types):
                raise InvalidRequest("event_types must be a non-empty list of distinct types")
            body["event_types"] = types
        if auth_token is not None:
            body["auth_token"] = auth_token
        if not body:
            raise InvalidRequest("update_subscription needs at least one field to change")
        path = f"/webhooks/subscriptions/{segment(subscription_id)}"
        return await self._request(
            "PATCH", path, WebhookSubscription.model_validate_json, json_body=body
        )

    async def delete_subscription(self, subscription_id: str) -> None:
        """Delete a subscription; deliveries to it stop at once."""
        path = f"/webhooks/subscriptions/{segment(subscription_id)}"
        await self._request("DELETE", path, ignore_body)


def _parse_subscriptions(body: bytes) -> list[WebhookSubscription]:
    return _SubscriptionList.model_validate_json(body).subscriptions
