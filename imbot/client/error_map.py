"""Error responses to typed errors: the status chooses the family, the text a subclass.

Inkbox explains many refusals in prose (a 409 "the recipient has not messaged yet"), and
the machine codes some responses carry are not a documented contract. So, within the
family its status chooses, an error's type is read from its message first; the code is
only a hint, used when the text says nothing known. The error types themselves are drawn
in ``imbot.errors``; this is how the client picks one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imbot.errors import (
    BadRequest,
    Conflict,
    ConversationInactive,
    ConversationReleased,
    DuplicateContactRule,
    Forbidden,
    IdempotencyKeyReused,
    InkboxError,
    NotConnected,
    NotFound,
    NotMessagedYet,
    PayloadTooLarge,
    RateLimited,
    RecipientBlocked,
    RecipientNotE164,
    ServerError,
    Unauthorized,
    Unprocessable,
)

__all__ = ["error_for_response"]


_BY_STATUS: dict[int, type[InkboxError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: RateLimited,
}

# The hints: codes seen from the simulator and the SDK. Only used when the text is silent.
_BY_CODE: dict[str, type[InkboxError]] = {
    "recipient_blocked": RecipientBlocked,
    "no_assignment": NotConnected,
    "idempotency_key_reused": IdempotencyKeyReused,
    "conversation_released": ConversationReleased,
    "recipient_has_not_messaged": NotMessagedYet,
    "group_unsupported": ConversationInactive,
    "recipient_not_e164": RecipientNotE164,
    "duplicate_contact_rule": DuplicateContactRule,
    "media_too_large": PayloadTooLarge,
}

# Per status, in order: the first entry with a phrase in the lower-cased message decides.
# The idempotency phrases come first so that "…still in progress" is never read as an
# inactive conversation (it stays a plain Conflict, which the client retries by its code).
_BY_TEXT: dict[int, tuple[tuple[tuple[str, ...], type[InkboxError] | None], ...]] = {
    403: ((("blocked",), RecipientBlocked),),
    409: (
        (("in progress", "still running"), None),
        (("already used", "different request", "key reused"), IdempotencyKeyReused),
        (
            (
                "not messaged",
                "has not sent",
                "hasn't sent",
                "not sent a message",
                "hasn't messaged",
                "not written",
                "messages you first",
                "message it first",
                "messaged first",
            ),
            NotMessagedYet,
        ),
        (
            ("no longer connected", "released", "not connected", "disconnected"),
            ConversationReleased,
        ),
        (("group",), ConversationInactive),
        (("inactive",), ConversationInactive),
    ),
    422: ((("receive-only", "receive only", "non-phone", "not a phone number"), RecipientNotE164),),
}


def _by_text(status: int, message: str) -> type[InkboxError] | None:
    """The error type the message's words name for this status; ``None`` when they name none.

    An entry whose type is ``None`` names the status family itself: the words were
    recognised and mean "nothing more specific" (the code is not consulted either).
    """
    rules = _BY_TEXT.get(status)
    if rules is None:
        return None
    text = message.lower().replace("\u2019", "'")
    for phrases, cls in rules:
        if any(phrase in text for phrase in phrases):
            return cls or _BY_STATUS[status]
    return None


def error_for_response(
    status: int,
    body: Any,
    *,
    idempotency_key: str | None = None,
    retry_after: float | None = None,
) -> InkboxError:
    """Build the typed error for an error response.

    Args:
        status: the HTTP status code.
        body: the decoded JSON body (or ``None`` when it was not JSON).
        idempotency_key: the key the request carried, if any.
        retry_after: the parsed ``Retry-After`` header, if any.

    Returns:
        The most specific ``InkboxError`` subclass for the status and the message's text,
        with the error code as a hint when the text names nothing known.
    """
    detail: Any = body.get("detail") if isinstance(body, Mapping) else body
    agent_support = body.get("agent_support") if isinstance(body, Mapping) else None
    code: str | None = None
    message: str
    prose = ""  # what the server said in words: a code standing in for a message is not
    if isinstance(detail, Mapping):
        raw_code = detail.get("error") or detail.get("code")
        code = str(raw_code) if raw_code else None
        prose = str(detail.get("message") or "")
        message = prose or code or f"HTTP {status}"
        if status == 409 and "existing_rule_id" in detail:
            code = code or "duplicate_contact_rule"
    elif isinstance(detail, str):
        message = prose = detail
    elif isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, Mapping):
            loc = ".".join(str(p) for p in first.get("loc", []))
            message = f"{loc}: {first.get('msg', 'invalid')}" if loc else str(first.get("msg"))
        else:
            message = str(first)
    else:
        message = f"HTTP {status}"
    by_status = _BY_STATUS.get(status) or (ServerError if status >= 500 else InkboxError)
    cls = _by_text(status, prose) or _BY_CODE.get(code or "", by_status)
    if status == 409 and isinstance(detail, Mapping) and "existing_rule_id" in detail:
        # The rule id is what makes a duplicate-rule conflict, whatever code names it.
        cls = DuplicateContactRule
    elif by_status is InkboxError or not issubclass(cls, by_status):
        # A known code under an unexpected status must not change the status family.
        cls = by_status
    return cls(
        message,
        status=status,
        code=code,
        detail=detail,
        idempotency_key=idempotency_key,
        retry_after=retry_after,
        agent_support=agent_support if isinstance(agent_support, str) else None,
    )
