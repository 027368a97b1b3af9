"""The typed error tree and error_for_response's mapping from status and code to type."""

from __future__ import annotations

from typing import Any

import pytest

import imbot.errors as errors_module
from imbot.client.error_map import error_for_response
from imbot.errors import (
    AskTimeout,
    BadRequest,
    BodyTooLarge,
    ConfigError,
    Conflict,
    ConnectError,
    ConversationInactive,
    DuplicateContactRule,
    Forbidden,
    IdempotencyKeyReused,
    ImbotError,
    InkboxError,
    InvalidRequest,
    InvalidSignature,
    MalformedEvent,
    MediaTooLarge,
    NotConnected,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RecipientBlocked,
    RecipientNotE164,
    ServerError,
    SetupError,
    SkipHandler,
    TransportError,
    Unauthorized,
    Unprocessable,
    WebhookError,
)


def test_all_is_sorted_and_complete() -> None:
    exceptions = {
        name
        for name, value in vars(errors_module).items()
        if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
    }
    public = exceptions | {"is_transient", "single_exception"}
    assert errors_module.__all__ == sorted(errors_module.__all__)
    assert set(errors_module.__all__) == public


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (SetupError, RuntimeError),
        (ConfigError, SetupError),
        (InkboxError, ImbotError),
        (RecipientBlocked, Forbidden),
        (NotConnected, NotFound),
        (ConversationInactive, Conflict),
        (IdempotencyKeyReused, Conflict),
        (DuplicateContactRule, Conflict),
        (RecipientNotE164, Unprocessable),
        (ConnectError, TransportError),
        (TransportError, ImbotError),
        (InvalidRequest, ValueError),
        (InvalidRequest, ImbotError),
        (MediaTooLarge, ValueError),
        (InvalidSignature, WebhookError),
        (BodyTooLarge, WebhookError),
        (MalformedEvent, WebhookError),
        (AskTimeout, ImbotError),
        (AskTimeout, TimeoutError),
    ],
)
def test_hierarchy(child: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(child, parent)


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        (400, {"detail": "not enabled"}, BadRequest, None),
        (401, None, Unauthorized, None),
        (403, {"detail": {"error": "recipient_blocked"}}, RecipientBlocked, "recipient_blocked"),
        (403, {"detail": {"error": "admin_only"}}, Forbidden, "admin_only"),
        (404, {"detail": {"error": "no_assignment"}}, NotConnected, "no_assignment"),
        (404, {"detail": {"code": "no_assignment"}}, NotConnected, "no_assignment"),
        (
            409,
            {"detail": {"error": "group_unsupported"}},
            ConversationInactive,
            "group_unsupported",
        ),
        (
            409,
            {"detail": {"error": "agent_handle_unavailable"}},
            Conflict,
            "agent_handle_unavailable",
        ),
        (
            409,
            {"detail": {"existing_rule_id": "r1"}},
            DuplicateContactRule,
            "duplicate_contact_rule",
        ),
        # The rule id decides, whatever code the server names it by.
        (
            409,
            {"detail": {"error": "rule_exists", "existing_rule_id": "r1"}},
            DuplicateContactRule,
            "rule_exists",
        ),
        (413, {"detail": {"error": "media_too_large"}}, PayloadTooLarge, "media_too_large"),
        (422, {"detail": {"error": "recipient_not_e164"}}, RecipientNotE164, "recipient_not_e164"),
        (
            422,
            {"detail": [{"loc": ["body", "to"], "msg": "bad", "type": "value_error"}]},
            Unprocessable,
            None,
        ),
        (429, {"detail": {"error": "sender_rate_limited"}}, RateLimited, "sender_rate_limited"),
        (500, "oops", ServerError, None),
        (
            503,
            {"detail": {"error": "dedicated_imessage_number_inventory_pending"}},
            ServerError,
            "dedicated_imessage_number_inventory_pending",
        ),
        (
            402,
            {"detail": {"error": "dedicated_imessage_number_quota_exceeded"}},
            InkboxError,
            "dedicated_imessage_number_quota_exceeded",
        ),
        # A known code under an unexpected status keeps the status family.
        (400, {"detail": {"error": "recipient_blocked"}}, BadRequest, "recipient_blocked"),
        (500, {"detail": {"error": "no_assignment"}}, ServerError, "no_assignment"),
    ],
)
def test_error_for_response(
    status: int, body: Any, expected: type[InkboxError], code: str | None
) -> None:
    error = error_for_response(status, body, idempotency_key="k", retry_after=1.5)
    assert type(error) is expected
    assert error.status == status
    assert error.code == code
    assert error.idempotency_key == "k"
    assert error.retry_after == 1.5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"detail": "plain words"}, "plain words"),
        ({"detail": {"error": "x_code", "message": "explained"}}, "explained"),
        ({"detail": {"error": "x_code"}}, "x_code"),
        ({"detail": {}}, "HTTP 418"),
        ({"detail": [{"loc": ["body", "text"], "msg": "too long"}]}, "body.text: too long"),
        ({"detail": [{"msg": "no location"}]}, "no location"),
        ({"detail": ["just text"]}, "just text"),
        ({"detail": []}, "HTTP 418"),
        (None, "HTTP 418"),
        ("<html>proxy</html>", "<html>proxy</html>"),
    ],
)
def test_messages(body: Any, message: str) -> None:
    error = error_for_response(418, body)
    assert error.message == message
    assert str(error).startswith("418")


def test_str_includes_the_code() -> None:
    error = error_for_response(
        409, {"detail": {"error": "conversation_released", "message": "gone"}}
    )
    assert str(error) == "409 conversation_released: gone"


def test_agent_support_must_be_text() -> None:
    assert (
        error_for_response(500, {"detail": "x", "agent_support": "call us"}).agent_support
        == "call us"
    )
    assert error_for_response(500, {"detail": "x", "agent_support": {"a": 1}}).agent_support is None


def test_detail_properties() -> None:
    blocked = error_for_response(
        403, {"detail": {"error": "recipient_blocked", "matched_rule_id": None, "address": "+1555"}}
    )
    assert isinstance(blocked, RecipientBlocked)
    assert blocked.matched_rule_id is None  # blocked by the whitelist default
    assert blocked.address == "+1555"
    plain = RecipientBlocked("x", status=403, detail="text detail")
    assert plain.matched_rule_id is None
    assert plain.address is None
    assert NotConnected("x", status=404).connect_command is None
    assert NotConnected("x", status=404).router_number is None
    assert (
        DuplicateContactRule("x", status=409, detail={"existing_rule_id": 7}).existing_rule_id
        == "7"
    )


def test_local_errors() -> None:
    too_big = MediaTooLarge(11, 10)
    assert (too_big.size, too_big.limit) == (11, 10)
    assert "11 bytes" in str(too_big)
    assert "10-byte limit" in str(too_big)
    assert TransportError("reset", idempotency_key="k").idempotency_key == "k"
    assert ConnectError("refused").idempotency_key is None
    invalid = InvalidRequest("bad", errors=[{"loc": "to", "msg": "x"}])
    assert invalid.errors == [{"loc": "to", "msg": "x"}]
    assert InvalidRequest("bad").errors == []
    signature = InvalidSignature("stale_timestamp", "too old")
    assert signature.reason == "stale_timestamp"
    assert str(signature) == "too old"


def test_ask_timeout() -> None:
    timeout = AskTimeout(2.5, "conv_1")
    assert (timeout.timeout, timeout.conversation_id) == (2.5, "conv_1")
    assert "no answer within 2.5 s in conversation conv_1" in str(timeout)
    assert "catch AskTimeout" in str(timeout)


def test_skip_handler_is_control_flow_not_an_imbot_error() -> None:
    assert issubclass(SkipHandler, Exception)
    assert not issubclass(SkipHandler, ImbotError)
    doc = errors_module.__doc__ or ""
    assert "SkipHandler" in doc and "not an error to catch" in doc


def test_the_old_homes_still_export_the_same_classes() -> None:
    import imbot
    from imbot.bot.context import AskTimeout as FromContext
    from imbot.routing.handlers import SkipHandler as FromHandlers

    assert FromContext is AskTimeout is imbot.AskTimeout
    assert FromHandlers is SkipHandler is imbot.SkipHandler
    assert AskTimeout.__module__ == SkipHandler.__module__ == "imbot.errors"


def test_the_tree_docstring_names_every_error() -> None:
    doc = errors_module.__doc__ or ""
    for name in errors_module.__all__:
        if name not in ("is_transient", "single_exception"):
            assert name in doc, f"{name} is missing from the tree in imbot/errors.py"
