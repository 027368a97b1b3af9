"""The typed errors imbot raises, drawn in one place.

```
ImbotError
├── SetupError (also RuntimeError)     misuse caught at registration or start-up
├── ConfigError (also SetupError)      a missing or invalid setting (API key, handle, URL)
│   └── MissingSigningKey              no webhook signing key to verify deliveries with
├── AppError (also SetupError)         `imbot run` / `imbot dev`: the APP names no usable Bot
├── DevError (also SetupError)         `imbot dev` cannot start: a port, the simulator refused
├── ChatError (also SetupError)        `imbot chat` cannot talk to the simulator
├── AskTimeout (also TimeoutError)     ctx.ask got no answer in time
├── CommandArgumentError               a command's words do not fit it (answered with usage)
├── HandlerTimeout (also TimeoutError) a handler ran past Bot(handler_timeout=...)
├── EventDeadLettered                  an event was given up on and kept as a dead letter
├── InkboxError                        the API answered with an error status
│   ├── BadRequest                     400  e.g. identity not iMessage-enabled
│   ├── Unauthorized                   401  missing or wrong API key
│   ├── Forbidden                      403
│   │   └── RecipientBlocked           403  recipient_blocked (contact rule or whitelist)
│   ├── NotFound                       404
│   │   └── NotConnected               404  no_assignment: the human never texted connect
│   ├── Conflict                       409
│   │   ├── ConversationInactive       409  released, not messaged yet, or a group
│   │   │   ├── ConversationReleased   409  the human is no longer connected
│   │   │   └── NotMessagedYet         409  connected, but the human has not written yet
│   │   ├── IdempotencyKeyReused       409  same Idempotency-Key, different request
│   │   └── DuplicateContactRule       409  a rule already covers that number
│   ├── PayloadTooLarge                413  media over the size cap
│   ├── Unprocessable                  422  body or query validation failed
│   │   └── RecipientNotE164           422  the remote party is not a phone number
│   ├── RateLimited                    429  send cap reached; see retry_after
│   └── ServerError                    5xx
├── TransportError                     no usable HTTP answer: reset, timed out, unreadable
│   └── ConnectError                   the connection could not be opened; nothing was sent
├── InvalidRequest (also ValueError)   a request refused locally, before anything is sent
├── MediaTooLarge (also ValueError)    refused locally, before any upload
├── StoreUnavailable                   the shared store (Redis) cannot be reached; retried
├── StateConflict                      ctx.state changed elsewhere since loaded; event retried
└── WebhookError                       an inbound webhook request was refused
    ├── InvalidSignature               bad, missing or stale signature headers
    ├── BodyTooLarge                   the body is over the server's limit
    └── MalformedEvent                 the body is not a valid event envelope

SkipHandler (an Exception, not an ImbotError)   control flow, not an error
```

``SkipHandler`` is control flow, not an error to catch: ``ctx.skip()`` raises it so that
routing passes the event on to the next matching handler. Let it leave the handler (an
``except Exception`` around ``ctx.skip()`` would stop the skip). It is deliberately outside
``ImbotError``, so ``except ImbotError`` around a send does not swallow a skip, and
``@bot.on_error(SkipHandler)`` is refused at registration.

Every other error here derives from ``ImbotError``; several also derive from the built-in
that fits (``RuntimeError``, ``TimeoutError``, ``ValueError``), so generic handlers work too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AppError",
    "AskTimeout",
    "BadRequest",
    "BodyTooLarge",
    "ChatError",
    "CommandArgumentError",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "ConversationInactive",
    "ConversationReleased",
    "DevError",
    "DuplicateContactRule",
    "EventDeadLettered",
    "Forbidden",
    "HandlerTimeout",
    "IdempotencyKeyReused",
    "ImbotError",
    "InkboxError",
    "InvalidRequest",
    "InvalidSignature",
    "MalformedEvent",
    "MediaTooLarge",
    "MissingSigningKey",
    "NotConnected",
    "NotFound",
    "NotMessagedYet",
    "PayloadTooLarge",
    "RateLimited",
    "RecipientBlocked",
    "RecipientNotE164",
    "ServerError",
    "SetupError",
    "SkipHandler",
    "StateConflict",
    "StoreUnavailable",
    "TransportError",
    "Unauthorized",
    "Unprocessable",
    "WebhookError",
    "is_transient",
    "single_exception",
]


class ImbotError(Exception):
    """Root of every error imbot raises on purpose."""


class SetupError(ImbotError, RuntimeError):
    """The bot was set up wrongly: a bad handler, a late registration, a missing part."""


class ConfigError(SetupError):
    """A setting is missing or invalid; the message names the setting and how to give it."""


class MissingSigningKey(ConfigError):
    """No webhook signing key is configured, so deliveries cannot be verified.

    Raised when serving needs a key and neither ``Bot(signing_key=...)`` nor
    ``IMBOT_SIGNING_KEY`` gives one; the message says how to get one.
    """


class AppError(SetupError):
    """The APP argument names nothing usable: missing file, import error, or no ``Bot``."""


class DevError(SetupError):
    """``imbot dev`` cannot start; the message says why and what to do."""


class ChatError(SetupError):
    """``imbot chat`` cannot talk to the simulator; the message says what to do."""


class AskTimeout(ImbotError, TimeoutError):
    """``ctx.ask`` got no answer in time.

    It is also a ``TimeoutError``.

    Example:
        >>> try:
        ...     answer = await ctx.ask("Which city?", timeout=60)
        ... except AskTimeout:
        ...     await ctx.reply("No worries, ask me again later.")

    Attributes:
        timeout: the seconds waited.
        conversation_id: the conversation asked.
    """

    def __init__(self, timeout: float, conversation_id: str) -> None:
        super().__init__(
            f"no answer within {timeout:g} s in conversation {conversation_id}; "
            "catch AskTimeout to reply something else, or pass a longer timeout="
        )
        self.timeout = timeout
        self.conversation_id = conversation_id


class CommandArgumentError(ImbotError):
    """A command's arguments are missing, extra or of the wrong type.

    The bot answers it with the command's usage line; handlers never see it.

    Attributes:
        reason: what was wrong, e.g. ``minutes: Input should be a valid integer (got 'x')``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandlerTimeout(ImbotError, TimeoutError):
    """A handler ran longer than ``Bot(handler_timeout=...)`` and was cancelled.

    It goes to the error handlers like any handler exception; the event is done.

    Attributes:
        handler: the handler's qualified name.
        timeout: the limit, in seconds.
    """

    def __init__(self, handler: str, timeout: float) -> None:
        super().__init__(
            f"handler {handler} ran longer than {timeout:g} s and was cancelled; raise "
            "Bot(handler_timeout=...) or move the slow work out of the handler"
        )
        self.handler = handler
        self.timeout = timeout


class EventDeadLettered(ImbotError):
    """An event was given up on: it is kept as a dead letter, to list and replay.

    Error listeners get it (with the last error as ``__cause__``) when an event's handler
    kept failing on transient API errors past the retry deadline (``reason="deadline"``), or
    its handling crashed the process again and again (``reason="poison"``).

    Attributes:
        event_id: the event's envelope id.
        reason: ``"deadline"`` or ``"poison"``.
        attempts: how many times its handling was tried.
    """

    def __init__(self, event_id: str, reason: str, attempts: int, detail: str) -> None:
        super().__init__(
            f"event {event_id} became a dead letter ({reason}) after {attempts} "
            f"attempt{'s' * (attempts != 1)}: {detail}. List it with `imbot dead-letters "
            "list`, replay it with `imbot dead-letters replay` or bot.replay_dead_letter()"
        )
        self.event_id = event_id
        self.reason = reason
        self.attempts = attempts


class SkipHandler(Exception):
    """Raised in a handler (or middleware) to pass the event on to the next matching handler.

    ``ctx.skip()`` raises it. Anything the skipped handler already sent stays sent, and
    send ordinals keep counting, so idempotency keys never repeat within one event. It is
    control flow, not an error: routing catches it, and it is not an ``ImbotError``.

    Example:
        >>> @bot.on_message()
        ... async def maybe(ctx):
        ...     if not ctx.state.get("subscribed"):
        ...         ctx.skip()          # the next matching handler runs instead
        ...     await ctx.reply("Welcome back")
    """


class InkboxError(ImbotError):
    """The Inkbox API (or the simulator) answered with an error status.

    Attributes:
        status: the HTTP status code.
        code: the machine code from ``detail.error`` (or ``detail.code``), if any.
        detail: the decoded ``detail`` member: a string, an object or a list.
        message: a human-readable summary.
        idempotency_key: the key the failed send carried, so it can be looked up later.
        retry_after: seconds from ``Retry-After``, when the server sent one.
        agent_support: escalation text from the server, when present.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        detail: Any = None,
        idempotency_key: str | None = None,
        retry_after: float | None = None,
        agent_support: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.detail = detail
        self.idempotency_key = idempotency_key
        self.retry_after = retry_after
        self.agent_support = agent_support

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.status}{code}: {self.message}"


class BadRequest(InkboxError):
    """400: the request cannot be served as asked (for example iMessage is not enabled)."""


class Unauthorized(InkboxError):
    """401: the API key is missing or wrong. Set ``INKBOX_API_KEY`` or pass ``api_key=``."""


class Forbidden(InkboxError):
    """403: the key may not do this (admin-only call, another identity's resource)."""


class RecipientBlocked(Forbidden):
    """403 ``recipient_blocked``: a contact rule or the whitelist blocks this number.

    Attributes:
        matched_rule_id: the blocking rule, or ``None`` when the whitelist default blocked.
        address: the blocked E.164 number.
    """

    @property
    def matched_rule_id(self) -> str | None:
        """The id of the contact rule that blocked the send, if one did."""
        return _detail_field(self.detail, "matched_rule_id")

    @property
    def address(self) -> str | None:
        """The blocked number."""
        return _detail_field(self.detail, "address")


class NotFound(InkboxError):
    """404: no such resource, or not visible to this key."""


class NotConnected(NotFound):
    """404 ``no_assignment``: the human has not texted ``connect @handle`` to the router.

    Attributes:
        connect_command: the text the human must send, when the server gave it.
        router_number: the router number to send it to, when the server gave it.
    """

    @property
    def connect_command(self) -> str | None:
        """The connect text the human must send first."""
        return _detail_field(self.detail, "connect_command")

    @property
    def router_number(self) -> str | None:
        """The router number the human must text."""
        return _detail_field(self.detail, "router_number")


class Conflict(InkboxError):
    """409: the request conflicts with the current state."""


class ConversationInactive(Conflict):
    """409: the conversation is released, silent so far, or a group that does not allow this.

    The service explains a 409 in prose; imbot reads the text (codes are only a hint) and
    raises one of the two subclasses when it says which case this is.
    """


class ConversationReleased(ConversationInactive):
    """409: the human is no longer connected (released); they reconnect through the router."""


class NotMessagedYet(ConversationInactive):
    """409: the human connected but has not written in the new thread yet.

    On Inkbox the agent may only write after the human's first message there; greet from
    ``@bot.on_connect`` instead, which runs on that first message.
    """


class IdempotencyKeyReused(Conflict):
    """409 ``idempotency_key_reused``: the key was used before with a different request."""


class DuplicateContactRule(Conflict):
    """409: a contact rule already covers that number; see ``existing_rule_id``."""

    @property
    def existing_rule_id(self) -> str | None:
        """The id of the rule that already covers the number."""
        return _detail_field(self.detail, "existing_rule_id")


class PayloadTooLarge(InkboxError):
    """413: the server refused an upload over its size cap."""


class Unprocessable(InkboxError):
    """422: the body or query failed validation; ``detail`` says which field."""


class RecipientNotE164(Unprocessable):
    """422 ``recipient_not_e164``: the remote party is not a phone number (receive-only)."""


class RateLimited(InkboxError):
    """429: too many requests or the rolling 24-hour send cap; wait ``retry_after`` seconds."""


class ServerError(InkboxError):
    """5xx: the server failed; sends are retried automatically before this is raised."""


class TransportError(ImbotError):
    """The request got no usable HTTP answer: reset, timed out, or an unreadable body.

    Attributes:
        idempotency_key: the key a failed send carried, so it can be retried safely.
    """

    def __init__(self, message: str, *, idempotency_key: str | None = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class ConnectError(TransportError):
    """The connection could not be opened (refused, DNS, TLS), so nothing was sent.

    Unlike other transport errors, this one is safe to retry for any request.
    """


class InvalidRequest(ImbotError, ValueError):
    """A request was refused locally, before anything was sent: a field value is invalid.

    It is also a ``ValueError``. The message names the field and what is wrong with it.

    Attributes:
        errors: one dict per problem, each with ``loc`` (the field path) and ``msg``.
    """

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class MediaTooLarge(ImbotError, ValueError):
    """A file is over the 10 MiB media cap; refused before any byte is uploaded."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"media is {size} bytes, over the {limit}-byte limit; "
            "send a smaller file or a link to it"
        )
        self.size = size
        self.limit = limit


class StoreUnavailable(ImbotError):
    """The shared store (Redis) is out of reach: webhooks get 503, lanes wait (transient)."""


class StateConflict(ImbotError):
    """``ctx.state`` changed elsewhere since it was loaded: the event runs again (transient)."""


class WebhookError(ImbotError):
    """An inbound webhook request was refused before any handler ran."""


class InvalidSignature(WebhookError):
    """The signature headers are missing, wrong or outside the timestamp window.

    Attributes:
        reason: a short machine-readable reason (``missing_header``, ``bad_signature``,
            ``stale_timestamp``, ``bad_timestamp``, ``no_secret``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BodyTooLarge(WebhookError):
    """The webhook body is larger than the server accepts."""


class MalformedEvent(WebhookError):
    """The webhook body is not JSON, or not a valid event envelope."""


def _detail_field(detail: Any, name: str) -> str | None:
    if isinstance(detail, Mapping):
        value = detail.get(name)
        return None if value is None else str(value)
    return None


_STORE_TRANSIENT = StoreUnavailable | StateConflict  # the shared store: out of reach, or moved on


def is_transient(exc: BaseException) -> bool:
    """Whether an error may go away by itself: the API unreachable, timed out, 429 or 5xx.

    A handler that fails with one of these is run again later (see ``docs/dispatch.md``);
    its sends keep their idempotency keys, so nothing is sent twice.
    """
    return isinstance(exc, TransportError | RateLimited | ServerError | _STORE_TRANSIENT)


def single_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside (nested) task-group errors, or ``None`` when there are several.

    A task group wraps what its tasks raise; where one task failed, callers want that error,
    not a group around it.

    Example:
        >>> single_exception(BaseExceptionGroup("", [ValueError("x")]))
        ValueError('x')
    """
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner
