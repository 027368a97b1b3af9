"""HTTP handlers for the Inkbox API surface (``/api/v1/...`` and ``/api/whoami``).

Handlers only translate: read the request, call the rules, write JSON. Paths, methods,
status codes and shapes follow the wire doc; where it is silent, §16's defaults apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from imbot.sim.accounts import Accounts
from imbot.sim.auth import Principal, principal_of
from imbot.sim.core import Core
from imbot.sim.media import MediaStore
from imbot.sim.params import Query, path_uuid
from imbot.sim.queries import Queries
from imbot.sim.requests import idempotency_key, read_json, read_upload
from imbot.sim.responses import json_response, unprocessable
from imbot.sim.service import Messaging
from imbot.sim.subscriptions import Subscriptions
from imbot.sim.validation import (
    ConversationRef,
    IdentityCreate,
    IdentityUpdate,
    ReactionBody,
    RuleCreate,
    RuleUpdate,
    SendBody,
    SubscriptionCreate,
    SubscriptionUpdate,
)

__all__ = ["Api"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_IM = "/api/v1/imessage"
_RULES = _IM + "/identities/{handle}/contact-rules"
_SUBS = "/api/v1/webhooks/subscriptions"


def _no_content() -> web.Response:
    return web.Response(status=204)


class Api:
    """The ``/api`` routes, bound to the rule objects.

    Args:
        core: the simulator's shared state.
        messaging: the iMessage writes.
        queries: the iMessage reads.
        accounts: identities, keys and contact rules.
        subscriptions: webhook subscriptions and deliveries.
        media: the media store.
    """

    def __init__(
        self,
        core: Core,
        *,
        messaging: Messaging,
        queries: Queries,
        accounts: Accounts,
        subscriptions: Subscriptions,
        media: MediaStore,
    ) -> None:
        self._core = core
        self._messaging = messaging
        self._queries = queries
        self._accounts = accounts
        self._subs = subscriptions
        self._media = media

    def routes(self) -> list[web.RouteDef]:
        """Every ``/api`` route."""
        get, post, patch, delete = web.get, web.post, web.patch, web.delete
        table: list[tuple[Callable[..., web.RouteDef], str, Handler]] = [
            (get, "/api/whoami", self.whoami),
            (get, _IM + "/triage-number", self.triage),
            (post, _IM + "/messages", self.send),
            (get, _IM + "/messages", self.list_messages),
            (get, _IM + "/messages/{message_id}", self.get_message),
            (get, _IM + "/messages/{message_id}/thread", self.message_thread),
            (post, _IM + "/media", self.upload),
            (get, _IM + "/conversations", self.list_conversations),
            (get, _IM + "/conversations/{conversation_id}", self.get_conversation),
            (get, _IM + "/conversations/{conversation_id}/threads/{thread_id}", self.thread),
            (get, _IM + "/assignments", self.list_assignments),
            (delete, _IM + "/assignments/{assignment_id}", self.release),
            (post, _IM + "/mark-read", self.mark_read),
            (post, _IM + "/typing", self.typing),
            (post, _IM + "/reactions", self.react),
            (delete, _IM + "/reactions/{reaction_id}", self.unreact),
            (get, _RULES, self.list_rules),
            (post, _RULES, self.create_rule),
            (get, _RULES + "/{rule_id}", self.get_rule),
            (patch, _RULES + "/{rule_id}", self.update_rule),
            (delete, _RULES + "/{rule_id}", self.delete_rule),
            (get, _IM + "/contact-rules", self.list_all_rules),
            (get, _IM + "/numbers", self.list_numbers),
            (post, _IM + "/numbers", self.claim_number),
            (post, "/api/v1/identities", self.create_identity),
            (post, "/api/v1/identities/", self.create_identity),
            (get, "/api/v1/identities", self.list_identities),
            (get, "/api/v1/identities/", self.list_identities),
            (get, "/api/v1/identities/{handle}", self.get_identity),
            (patch, "/api/v1/identities/{handle}", self.update_identity),
            (delete, "/api/v1/identities/{handle}", self.delete_identity),
            (post, "/api/v1/identities/{handle}/signing-key", self.rotate_key),
            (get, "/api/v1/identities/{handle}/signing-key", self.key_status),
            (post, "/api/v1/signing-keys", self.legacy_rotate_key),
            (get, "/api/v1/signing-keys", self.legacy_key_status),
            (post, _SUBS, self.create_sub),
            (get, _SUBS, self.list_subs),
            (get, _SUBS + "/{sub_id}", self.get_sub),
            (patch, _SUBS + "/{sub_id}", self.update_sub),
            (delete, _SUBS + "/{sub_id}", self.delete_sub),
            (get, "/api/v1/webhooks/catalog", self.catalog),
            (get, "/api/v1/webhooks/deliveries", self.deliveries),
            (post, "/api/v1/webhooks/deliveries/{delivery_id}/replay", self.replay),
            (get, "/api/v1/message-sends/lookup", self.lookup_send),
        ]
        return [method(path, handler) for method, path, handler in table]

    # Who am I

    async def whoami(self, request: web.Request) -> web.Response:
        """``GET /api/whoami``."""
        principal = principal_of(request)
        subtype = "api_key.admin_scoped" if principal.is_admin else "api_key.agent_scoped.claimed"
        identity = (
            self._core.identity(principal.identity_id)
            if principal.identity_id is not None
            else None
        )
        return json_response(
            {
                "auth_type": "api_key",
                "auth_subtype": subtype,
                "organization_id": self._core.organization_id,
                "key_id": principal.key_id,
                "label": principal.label,
                "description": None,
                "created_by": None,
                "creator_type": None,
                "created_at": principal.created_at,
                "last_used_at": None,
                "expires_at": None,
                "scope": "admin" if principal.is_admin else "agent",
                "agent_identity_id": principal.identity_id,
                "agent_handle": identity["handle"] if identity is not None else None,
            }
        )

    # Messages

    async def triage(self, request: web.Request) -> web.Response:
        """``GET /triage-number``."""
        return json_response(self._queries.triage(principal_of(request)))

    async def send(self, request: web.Request) -> web.Response:
        """``POST /messages``."""
        principal = principal_of(request)
        query = Query(request.query)
        agent_identity_id = query.uuid("agent_identity_id")
        key = idempotency_key(request)
        body = await read_json(request, SendBody)
        status, data, headers = self._messaging.send(principal, body, agent_identity_id, key)
        return json_response(data, status, headers)

    async def list_messages(self, request: web.Request) -> web.Response:
        """``GET /messages``."""
        return json_response(
            self._queries.list_messages(principal_of(request), Query(request.query))
        )

    async def get_message(self, request: web.Request) -> web.Response:
        """``GET /messages/{id}``."""
        message_id = path_uuid(request.match_info["message_id"], "message_id")
        return json_response(
            self._queries.get_message(principal_of(request), message_id, Query(request.query))
        )

    async def message_thread(self, request: web.Request) -> web.Response:
        """``GET /messages/{id}/thread``."""
        message_id = path_uuid(request.match_info["message_id"], "message_id")
        return json_response(
            self._queries.thread_of_message(principal_of(request), message_id, Query(request.query))
        )

    async def upload(self, request: web.Request) -> web.Response:
        """``POST /media`` (multipart ``file``, 10 MiB cap)."""
        principal_of(request)
        filename, content_type, data = await read_upload(request, self._core.config.media_limit)
        return json_response(self._media.save(filename, content_type, data), 201)

    # Conversations and assignments

    async def list_conversations(self, request: web.Request) -> web.Response:
        """``GET /conversations``."""
        return json_response(
            self._queries.list_conversations(principal_of(request), Query(request.query))
        )

    async def get_conversation(self, request: web.Request) -> web.Response:
        """``GET /conversations/{id}``."""
        conversation_id = path_uuid(request.match_info["conversation_id"], "conversation_id")
        return json_response(
            self._queries.get_conversation(
                principal_of(request), conversation_id, Query(request.query)
            )
        )

    async def thread(self, request: web.Request) -> web.Response:
        """``GET /conversations/{id}/threads/{thread_id}``."""
        conversation_id = path_uuid(request.match_info["conversation_id"], "conversation_id")
        thread_id = path_uuid(request.match_info["thread_id"], "thread_id")
        return json_response(
            self._queries.conversation_thread(
                principal_of(request), conversation_id, thread_id, Query(request.query)
            )
        )

    async def list_assignments(self, request: web.Request) -> web.Response:
        """``GET /assignments``."""
        return json_response(
            self._queries.list_assignments(principal_of(request), Query(request.query))
        )

    async def release(self, request: web.Request) -> web.Response:
        """``DELETE /assignments/{id}``."""
        assignment_id = path_uuid(request.match_info["assignment_id"], "assignment_id")
        self._messaging.release_assignment(principal_of(request), assignment_id)
        return _no_content()

    async def mark_read(self, request: web.Request) -> web.Response:
        """``POST /mark-read``."""
        principal = principal_of(request)
        body = await read_json(request, ConversationRef)
        return json_response(self._messaging.mark_read(principal, str(body.conversation_id)))

    async def typing(self, request: web.Request) -> web.Response:
        """``POST /typing``."""
        principal = principal_of(request)
        body = await read_json(request, ConversationRef)
        return json_response(self._messaging.typing(principal, str(body.conversation_id)))

    async def react(self, request: web.Request) -> web.Response:
        """``POST /reactions``."""
        principal = principal_of(request)
        body = await read_json(request, ReactionBody)
        return json_response(self._messaging.send_reaction(principal, body), 201)

    async def unreact(self, request: web.Request) -> web.Response:
        """``DELETE /reactions/{id}``."""
        reaction_id = path_uuid(request.match_info["reaction_id"], "reaction_id")
        self._messaging.remove_reaction(principal_of(request), reaction_id)
        return _no_content()

    # Contact rules

    def _rule_args(self, request: web.Request) -> tuple[Principal, str]:
        return principal_of(request), request.match_info["handle"]

    async def list_rules(self, request: web.Request) -> web.Response:
        """``GET /identities/{handle}/contact-rules``."""
        principal, handle = self._rule_args(request)
        return json_response(self._accounts.list_rules(principal, handle, Query(request.query)))

    async def create_rule(self, request: web.Request) -> web.Response:
        """``POST /identities/{handle}/contact-rules``."""
        principal, handle = self._rule_args(request)
        self._accounts.addressed(principal, handle)
        body = await read_json(request, RuleCreate)
        return json_response(self._accounts.create_rule(principal, handle, body), 201)

    async def get_rule(self, request: web.Request) -> web.Response:
        """``GET /identities/{handle}/contact-rules/{id}``."""
        principal, handle = self._rule_args(request)
        rule_id = path_uuid(request.match_info["rule_id"], "rule_id")
        return json_response(self._accounts.get_rule(principal, handle, rule_id))

    async def update_rule(self, request: web.Request) -> web.Response:
        """``PATCH /identities/{handle}/contact-rules/{id}``."""
        principal, handle = self._rule_args(request)
        rule_id = path_uuid(request.match_info["rule_id"], "rule_id")
        body = await read_json(request, RuleUpdate)
        return json_response(self._accounts.update_rule(principal, handle, rule_id, body))

    async def delete_rule(self, request: web.Request) -> web.Response:
        """``DELETE /identities/{handle}/contact-rules/{id}``."""
        principal, handle = self._rule_args(request)
        rule_id = path_uuid(request.match_info["rule_id"], "rule_id")
        self._accounts.delete_rule(principal, handle, rule_id)
        return _no_content()

    async def list_all_rules(self, request: web.Request) -> web.Response:
        """``GET /contact-rules`` (admin)."""
        return json_response(
            self._accounts.list_all_rules(principal_of(request), Query(request.query))
        )

    # Dedicated lines (not simulated)

    async def list_numbers(self, request: web.Request) -> web.Response:
        """``GET /numbers``: the simulator has no dedicated lines."""
        principal_of(request)
        return json_response([])

    async def claim_number(self, request: web.Request) -> web.Response:
        """``POST /numbers``: always the plan-limit answer (402)."""
        principal_of(request)
        if request.headers.get("Idempotency-Key") is None:
            raise unprocessable(["header", "Idempotency-Key"], "Field required", "missing")
        raise self._accounts.no_dedicated_lines()

    # Identities and signing keys

    async def create_identity(self, request: web.Request) -> web.Response:
        """``POST /identities``."""
        principal = principal_of(request)
        body = await read_json(request, IdentityCreate)
        return json_response(self._accounts.create_identity(principal, body), 201)

    async def list_identities(self, request: web.Request) -> web.Response:
        """``GET /identities``."""
        return json_response(self._accounts.list_identities(principal_of(request)))

    async def get_identity(self, request: web.Request) -> web.Response:
        """``GET /identities/{handle}``."""
        return json_response(
            self._accounts.get_identity(principal_of(request), request.match_info["handle"])
        )

    async def update_identity(self, request: web.Request) -> web.Response:
        """``PATCH /identities/{handle}``."""
        principal = principal_of(request)
        handle = request.match_info["handle"]
        self._accounts.addressed(principal, handle)
        body = await read_json(request, IdentityUpdate)
        return json_response(self._accounts.update_identity(principal, handle, body))

    async def delete_identity(self, request: web.Request) -> web.Response:
        """``DELETE /identities/{handle}``."""
        self._accounts.delete_identity(principal_of(request), request.match_info["handle"])
        return _no_content()

    async def rotate_key(self, request: web.Request) -> web.Response:
        """``POST /identities/{handle}/signing-key``."""
        return json_response(
            self._accounts.rotate_signing_key(principal_of(request), request.match_info["handle"])
        )

    async def key_status(self, request: web.Request) -> web.Response:
        """``GET /identities/{handle}/signing-key``."""
        return json_response(
            self._accounts.signing_key_status(principal_of(request), request.match_info["handle"])
        )

    async def legacy_rotate_key(self, request: web.Request) -> web.Response:
        """``POST /signing-keys`` (deprecated org route)."""
        return json_response(self._accounts.legacy_signing_key(principal_of(request), rotate=True))

    async def legacy_key_status(self, request: web.Request) -> web.Response:
        """``GET /signing-keys`` (deprecated org route)."""
        return json_response(self._accounts.legacy_signing_key(principal_of(request), rotate=False))

    # Webhooks

    async def create_sub(self, request: web.Request) -> web.Response:
        """``POST /webhooks/subscriptions``."""
        principal = principal_of(request)
        body = await read_json(request, SubscriptionCreate)
        return json_response(self._subs.create(principal, body), 201)

    async def list_subs(self, request: web.Request) -> web.Response:
        """``GET /webhooks/subscriptions``."""
        return json_response(self._subs.list(principal_of(request), Query(request.query)))

    async def get_sub(self, request: web.Request) -> web.Response:
        """``GET /webhooks/subscriptions/{id}``."""
        sub_id = path_uuid(request.match_info["sub_id"], "sub_id")
        return json_response(self._subs.get(principal_of(request), sub_id))

    async def update_sub(self, request: web.Request) -> web.Response:
        """``PATCH /webhooks/subscriptions/{id}``."""
        principal = principal_of(request)
        sub_id = path_uuid(request.match_info["sub_id"], "sub_id")
        self._subs.get(principal, sub_id)
        body = await read_json(request, SubscriptionUpdate)
        return json_response(self._subs.update(principal, sub_id, body))

    async def delete_sub(self, request: web.Request) -> web.Response:
        """``DELETE /webhooks/subscriptions/{id}``."""
        sub_id = path_uuid(request.match_info["sub_id"], "sub_id")
        self._subs.delete(principal_of(request), sub_id)
        return _no_content()

    async def catalog(self, request: web.Request) -> web.Response:
        """``GET /webhooks/catalog``."""
        principal_of(request)
        return json_response(self._subs.catalog())

    async def deliveries(self, request: web.Request) -> web.Response:
        """``GET /webhooks/deliveries``."""
        return json_response(self._subs.deliveries(principal_of(request), Query(request.query)))

    async def replay(self, request: web.Request) -> web.Response:
        """``POST /webhooks/deliveries/{id}/replay``."""
        delivery_id = path_uuid(request.match_info["delivery_id"], "delivery_id")
        return json_response(await self._subs.replay(principal_of(request), delivery_id))

    async def lookup_send(self, request: web.Request) -> web.Response:
        """``GET /message-sends/lookup`` (iMessage sends only)."""
        principal = principal_of(request)
        query = Query(request.query)
        query.choice("sender_kind", ("imessage_identity", "mailbox", "phone_number"))
        sender_id = query.uuid("sender_id")
        if sender_id is None:
            raise unprocessable(["query", "sender_id"], "Field required", "missing")
        key = idempotency_key(request)
        if key is None:
            raise unprocessable(["header", "Idempotency-Key"], "Field required", "missing")
        data: dict[str, Any] = self._messaging.lookup_send(principal, sender_id, key)
        return json_response(data)
