"""Where chaos mode meets the simulator: the API middleware, the delivery hook, the switch.

- ``chaos_middleware`` stands in front of the agent-side API (``/api/...``) only: the phone
  API (``/sim/v1``), the chat page and media are never touched. During an outage it closes
  the connection without an answer; otherwise it asks the plan and answers ``429`` (with
  ``Retry-After``), ``502`` or ``503`` before doing anything, or does the work and holds the
  answer back (``slow``).
- ``DeliveryChaos`` gives webhook delivery its decision for an event's first attempt.
- ``ChaosApi`` serves ``/sim/v1/chaos`` (state, switch) and ``/sim/v1/chaos/down``, the
  endpoints behind the chat page's switch.

Streams (see ``imbot.sim.chaos_plan``): an API call's stream is its method and route plus,
when it names a conversation or a message in it (in the path, or as ``conversation_id``,
``message_id`` or ``to`` in a JSON body), the agent's handle and the human's number; a
webhook's stream is its identity's handle, the human's number and its event type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ConfigDict, Field

from imbot.sim.chaos import ApiFault, Chaos, WebhookFault
from imbot.sim.core import Core
from imbot.sim.requests import read_json
from imbot.sim.responses import ApiError, coded, json_response, unprocessable

if TYPE_CHECKING:
    from imbot.sim.delivery import OutboxItem

__all__ = ["FAILED_FIRST", "ChaosApi", "DeliveryChaos", "api_stream", "chaos_middleware", "lost"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# JSON bodies up to this size are read to find the conversation a call is about (the
# handler then gets the same, cached bytes); larger ones are uploads or mistakes.
_PEEK_LIMIT = 64 * 1024
_MAX_OUTAGE = 24 * 3600.0


def _error(fault: ApiFault, chaos: Chaos) -> ApiError:
    """The answer of a chaos error, shaped as Inkbox shapes its own."""
    marker = {"X-Sim-Chaos": fault}
    retry = {"Retry-After": str(chaos.retry_after), **marker}
    if fault == "429":
        return ApiError(
            429,
            coded(
                "rate_limited",
                f"Too many requests; retry after {chaos.retry_after} s (simulator chaos mode)",
            ),
            headers=retry,
        )
    if fault == "502":
        return ApiError(
            502,
            coded("upstream_error", "Upstream failure; safe to retry (simulator chaos mode)"),
            headers=marker,
        )
    return ApiError(
        503,
        coded(
            "service_unavailable",
            f"Temporarily unavailable; retry after {chaos.retry_after} s (simulator chaos mode)",
        ),
        headers=retry,
    )


def _conversation_subject(core: Core, conversation_id: object) -> str | None:
    if not isinstance(conversation_id, str) or not conversation_id:
        return None
    row = core.conversation(conversation_id)
    if row is None:
        return None
    identity = core.identity(row["identity_id"])
    handle = identity["handle"] if identity is not None else "?"
    return f"@{handle}>{row['remote_number']}"


def _message_subject(core: Core, message_id: object) -> str | None:
    if not isinstance(message_id, str) or not message_id:
        return None
    row = core.message(message_id)
    return _conversation_subject(core, row["conversation_id"]) if row is not None else None


async def api_stream(core: Core, request: web.Request) -> str:
    """The stream an API request belongs to: method, route and the conversation it names."""
    info = request.match_info
    resource = info.route.resource
    route = resource.canonical if resource is not None else request.path
    subject = _conversation_subject(core, info.get("conversation_id")) or _message_subject(
        core, info.get("message_id")
    )
    length = request.content_length
    if (
        subject is None
        and request.method == "POST"
        and request.content_type == "application/json"
        and length is not None
        and length <= _PEEK_LIMIT
    ):
        try:
            data: Any = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            data = None  # the handler answers 422
        if isinstance(data, dict):
            subject = _conversation_subject(core, data.get("conversation_id"))
            subject = subject or _message_subject(core, data.get("message_id"))
            to = data.get("to")
            if subject is None and isinstance(to, str):
                subject = to
    return f"{request.method} {route} {subject}" if subject else f"{request.method} {route}"


def chaos_middleware(core: Core) -> Middleware:
    """Middleware applying chaos and outages to ``/api/...`` requests (see the module doc)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        control = core.chaos
        if control.is_down():
            control.note_down(f"{request.method} {request.path}")
            # Unreachable, not unwell: no status line at all, so the client sees the
            # connection end (a 503 would be an answer from a service that is up).
            transport = request.transport
            if transport is not None:
                transport.close()
            return web.Response(status=503)  # never sent: the connection is closed
        if not control.active:
            return await handler(request)
        decided = control.api_fault(await api_stream(core, request))
        if decided is None:
            return await handler(request)
        fault, chaos = decided
        if fault != "slow":
            raise _error(fault, chaos)
        try:
            # The work is done now; only the answer is late (past the client's timeout).
            return await handler(request)
        finally:
            await anyio.sleep(chaos.slow_delay)

    return middleware


FAILED_FIRST = "chaos mode: the connection failed before the request was sent"
"""The delivery log's ``error_detail`` of a first attempt that chaos failed."""


def lost(status: int | None) -> str:
    """The delivery log's ``error_detail`` of an attempt whose answer chaos "lost"."""
    return f"chaos mode: the answer (HTTP {status}) was lost, so the event is delivered again"


class DeliveryChaos:
    """The webhook side of chaos: the decision for an event's first delivery attempt.

    Args:
        core: the simulator's shared state (its ``chaos`` control and its store).
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        # (identity id, conversation id) -> "@handle>+number": one lookup per conversation.
        self._subjects: dict[tuple[str, str], str] = {}
        # Outbox items held back as "late": their next turn is their first attempt, decided.
        self._held: set[int] = set()

    def _subject(self, identity_id: str, lane: str) -> str:
        key = (identity_id, lane)
        subject = self._subjects.get(key)
        if subject is None:
            subject = _conversation_subject(self._core, lane)
            if subject is None:
                identity = self._core.identity(identity_id)
                subject = "@" + (identity["handle"] if identity is not None else "?")
            self._subjects[key] = subject
        return subject

    def first_attempt(self, item: OutboxItem, *, can_retry: bool) -> WebhookFault | None:
        """Decide what chaos does to an item's attempt; only a first attempt can meet it.

        For ``"late"`` the item's ``next_attempt_at`` is moved on: the caller leaves it
        waiting in its lane, and its next turn goes ahead as usual.

        Args:
            item: the outbox item about to be attempted.
            can_retry: whether the retry schedule has a retry left.
        """
        if item.attempts or item.seq in self._held:
            self._held.discard(item.seq)
            return None
        control = self._core.chaos
        if not control.active:
            return None
        stream = f"{self._subject(item.identity_id, item.lane)} {item.event_type}"
        decided = control.webhook_fault(stream, can_retry=can_retry)
        if decided is None:
            return None
        fault, chaos = decided
        if fault == "late":
            self._held.add(item.seq)
            item.next_attempt_at = time.time() + chaos.late_delay
        return fault


class _Switch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    spec: str | None = Field(default=None, max_length=500)


class _Outage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=_MAX_OUTAGE)


class ChaosApi:
    """``/sim/v1/chaos``: see and switch chaos mode; take the API down for a while.

    Like the rest of ``/sim/v1`` these need no key: they stand for whoever sits at the
    simulator (the chat page's switch calls them).

    Args:
        core: the simulator's shared state.
    """

    def __init__(self, core: Core) -> None:
        self._core = core

    def routes(self) -> list[web.RouteDef]:
        """The chaos routes."""
        return [
            web.get("/sim/v1/chaos", self.status),
            web.put("/sim/v1/chaos", self.switch),
            web.post("/sim/v1/chaos/down", self.down),
        ]

    async def status(self, request: web.Request) -> web.Response:
        """``GET /sim/v1/chaos``: on or off, the settings, the outage, the faults so far."""
        return json_response(self._core.chaos.status())

    async def switch(self, request: web.Request) -> web.Response:
        """``PUT /sim/v1/chaos`` ``{"enabled": bool, "spec": str}``: switch, or set and switch.

        With ``spec`` the settings are replaced (a fresh plan) and chaos is on unless
        ``enabled`` is ``false``; with ``enabled`` alone the current settings are switched
        (``mild`` when there are none).
        """
        body = await read_json(request, _Switch)
        control = self._core.chaos
        if body.spec is not None:
            try:
                chaos = Chaos.parse(body.spec)
            except ValueError as exc:
                raise unprocessable(["body", "spec"], str(exc)) from None
            control.configure(chaos, enabled=body.enabled is not False)
        elif body.enabled is True:
            control.enable()
        elif body.enabled is False:
            control.disable()
        else:
            raise unprocessable(["body"], "give enabled (true or false), spec, or both")
        return json_response(control.status())

    async def down(self, request: web.Request) -> web.Response:
        """``POST /sim/v1/chaos/down`` ``{"seconds": N}``: no API answers for N s (0: up)."""
        body = await read_json(request, _Outage)
        control = self._core.chaos
        control.take_down(body.seconds)
        return json_response(control.status())
