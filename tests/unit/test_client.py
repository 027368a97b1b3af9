"""InkboxClient against a real scripted aiohttp server on 127.0.0.1."""

from __future__ import annotations

import gc
import io
import json
import re
import socket
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web
from inkbox_stub import InkboxStub, Reply

from imbot import __version__
from imbot.client.client import InkboxClient
from imbot.client.transport import MockTransport, Request, Response
from imbot.config import Settings
from imbot.errors import (
    BadRequest,
    ConfigError,
    ConnectError,
    ConversationInactive,
    DuplicateContactRule,
    Forbidden,
    IdempotencyKeyReused,
    InkboxError,
    InvalidRequest,
    MediaTooLarge,
    NotConnected,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RecipientBlocked,
    RecipientNotE164,
    ServerError,
    SetupError,
    TransportError,
    Unauthorized,
    Unprocessable,
)
from imbot.models import Message, SendMessage

EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "wire_examples.json"
_DATA = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
EX: dict[str, Any] = {**_DATA["examples"], **_DATA["constructed"]}

KEY = "ApiKey_test_0123456789"
CID = EX["message"]["conversation_id"]
MSG = "/api/v1/imessage/messages"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MiB = 1024 * 1024


@pytest.fixture
async def api() -> AsyncIterator[InkboxStub]:
    stub = InkboxStub()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
async def client(api: InkboxStub) -> AsyncIterator[InkboxClient]:
    async with InkboxClient(api_key=KEY, base_url=api.url) as c:
        yield c


def sent_reply(status: int = 201) -> Reply:
    return Reply(status, EX["send_response"])


# --- headers, settings, lifecycle -------------------------------------------------------------


async def test_every_request_carries_auth_accept_and_user_agent(
    api: InkboxStub, client: InkboxClient
) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, EX["triage_number"]))
    with anyio.fail_after(5):
        triage = await client.get_triage_number()
    assert triage.number == "+15550100000"
    assert triage.connect_command == "connect @my-agent"
    (req,) = api.requests
    assert req.headers["X-API-Key"] == KEY
    assert req.headers["Accept"] == "application/json"
    assert req.headers["User-Agent"] == f"imbot/{__version__}"
    assert "Idempotency-Key" not in req.headers
    assert "Prefer" not in req.headers
    assert req.body == b""


async def test_user_agent_prefix(api: InkboxStub) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, EX["triage_number"]))
    with anyio.fail_after(5):
        async with InkboxClient(KEY, api.url, user_agent="mybot/2.0") as c:
            await c.get_triage_number()
    assert api.requests[0].headers["User-Agent"] == f"mybot/2.0 imbot/{__version__}"


async def test_settings_come_from_env(monkeypatch: pytest.MonkeyPatch, api: InkboxStub) -> None:
    monkeypatch.setenv("INKBOX_API_KEY", "ApiKey_from_env")
    monkeypatch.setenv("INKBOX_BASE_URL", api.url + "/")
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, EX["triage_number"]))
    with anyio.fail_after(5):
        async with InkboxClient() as c:
            assert c.base_url == api.url
            await c.get_triage_number()
    assert api.requests[0].headers["X-API-Key"] == "ApiKey_from_env"


async def test_client_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="INKBOX_API_KEY"):
        InkboxClient()


async def test_settings_object(api: InkboxStub) -> None:
    settings = Settings(api_key=KEY, base_url=api.url)
    async with InkboxClient(settings=settings) as c:
        assert c.settings is settings
        assert c.base_url == api.url
    with pytest.raises(ConfigError, match="not both"):
        InkboxClient(api_key=KEY, settings=settings)


async def test_closed_client_refuses_requests(api: InkboxStub) -> None:
    c = InkboxClient(KEY, api.url)
    await c.aclose()
    with pytest.raises(SetupError, match="closed"):
        await c.get_triage_number()
    with pytest.raises(SetupError, match="closed"):
        async with c:
            pass
    await c.aclose()  # closing twice is harmless
    assert api.requests == []


async def test_clean_close_leaves_no_unclosed_session(api: InkboxStub) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, EX["triage_number"]))

    def unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
        return [str(w.message) for w in caught if "Unclosed" in str(w.message)]

    with anyio.fail_after(5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c = InkboxClient(KEY, api.url)
            await c.get_triage_number()
            await c.aclose()
            del c
            gc.collect()
        assert unclosed(caught) == []
        # The check can fail: a session dropped without closing does warn.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = aiohttp.ClientSession()
            connector = session.connector
            del session
            gc.collect()
        assert unclosed(caught) != []
        assert connector is not None
        await connector.close()


async def test_connections_are_kept_alive(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, EX["triage_number"]))
    with anyio.fail_after(5):
        for _ in range(3):
            await client.get_triage_number()
    assert len({r.peer for r in api.requests}) == 1


async def test_a_passed_transport_stays_open(api: InkboxStub) -> None:
    calls: list[Request] = []

    def handler(request: Request) -> Response:
        calls.append(request)
        return Response(200, {}, json.dumps(EX["triage_number"]).encode())

    transport = MockTransport(handler)
    async with InkboxClient(KEY, api.url, transport=transport) as c:
        await c.get_triage_number()
    assert transport.requests == calls
    assert calls[0].url == api.url + "/api/v1/imessage/triage-number"
    assert calls[0].timeout == 30.0


# --- sends and idempotency --------------------------------------------------------------------


async def test_send_message_body_headers_and_parse(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", MSG, sent_reply())
    with anyio.fail_after(5):
        message = await client.send_message(
            conversation_id=CID, text="Friday 3pm works — booked.", send_style="confetti"
        )
    assert isinstance(message, Message)
    assert message.to_wire() == EX["send_response"]["message"]
    (req,) = api.requests
    assert req.json() == EX["send_request"]
    assert req.headers["Content-Type"] == "application/json"
    assert UUID4.match(req.headers["Idempotency-Key"])
    assert req.headers["Prefer"] == "idempotency-replay"
    assert not req.query


async def test_send_by_number_passes_the_identity(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", MSG, sent_reply())
    with anyio.fail_after(5):
        await client.send_message(
            to="+15555550142",
            media_urls=["https://media.example/a.png"],
            agent_identity_id="7a1b2c3d-4e5f-4a6b-9c8d-0e1f2a3b4c5d",
            idempotency_key="reply-evt_1-0",
        )
    (req,) = api.requests
    assert req.json() == {"to": "+15555550142", "media_urls": ["https://media.example/a.png"]}
    assert req.query["agent_identity_id"] == "7a1b2c3d-4e5f-4a6b-9c8d-0e1f2a3b4c5d"
    assert req.headers["Idempotency-Key"] == "reply-evt_1-0"


async def test_each_send_gets_its_own_key(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", MSG, sent_reply())
    with anyio.fail_after(5):
        await client.send_message(conversation_id=CID, text="one")
        await client.send_message(conversation_id=CID, text="two")
    keys = {r.headers["Idempotency-Key"] for r in api.requests}
    assert len(keys) == 2


async def test_one_key_across_retries(api: InkboxStub, client: InkboxClient) -> None:
    api.reply(
        "POST",
        MSG,
        Reply(503, {"detail": "upstream busy"}),
        Reply(502, {"detail": "bad gateway"}),
        sent_reply(),
    )
    with anyio.fail_after(10):
        message = await client.send_message(conversation_id=CID, text="hello")
    assert message.id == EX["send_response"]["message"]["id"]
    assert len(api.requests) == 3
    keys = {r.headers["Idempotency-Key"] for r in api.requests}
    assert len(keys) == 1
    assert all(r.headers["Prefer"] == "idempotency-replay" for r in api.requests)
    assert all(r.json() == {"conversation_id": CID, "text": "hello"} for r in api.requests)


async def test_in_progress_send_is_retried(api: InkboxStub, client: InkboxClient) -> None:
    busy = {"detail": {"error": "idempotency_in_progress", "message": "still running"}}
    api.reply("POST", MSG, Reply(409, busy), sent_reply())
    with anyio.fail_after(10):
        await client.send_message(conversation_id=CID, text="hello", idempotency_key="k-1")
    assert [r.headers["Idempotency-Key"] for r in api.requests] == ["k-1", "k-1"]


async def test_retry_after_is_honoured(api: InkboxStub, client: InkboxClient) -> None:
    limited = {"detail": {"error": "sender_rate_limited", "message": "slow down"}}
    api.reply("POST", MSG, Reply(429, limited, {"Retry-After": "1"}), sent_reply())
    with anyio.fail_after(10):
        await client.send_message(conversation_id=CID, text="hello")
    first, second = api.requests
    waited = second.at - first.at
    assert 0.95 <= waited < 3.0
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


async def test_long_retry_after_raises_at_once(api: InkboxStub, client: InkboxClient) -> None:
    limited = {"detail": {"error": "sender_rate_limited", "message": "24h cap reached"}}
    api.reply("POST", MSG, Reply(429, limited, {"Retry-After": "3600"}))
    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(RateLimited) as info:
        await client.send_message(conversation_id=CID, text="hello", idempotency_key="k-429")
    assert time.monotonic() - started < 1.0
    assert len(api.requests) == 1
    error = info.value
    assert error.retry_after == 3600
    assert error.status == 429
    assert error.code == "sender_rate_limited"
    assert error.idempotency_key == "k-429"


async def test_max_retry_after_is_configurable(api: InkboxStub) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(503, None, {"Retry-After": "2"}))
    with anyio.fail_after(5):
        async with InkboxClient(KEY, api.url, max_retry_after=1.0) as c:
            with pytest.raises(ServerError) as info:
                await c.get_triage_number()
    assert info.value.retry_after == 2
    assert len(api.requests) == 1


async def test_exhausted_retries_raise_the_typed_error_with_the_key(
    api: InkboxStub, client: InkboxClient
) -> None:
    api.reply("POST", MSG, Reply(503, {"detail": "down"}))
    with anyio.fail_after(10), pytest.raises(ServerError) as info:
        await client.send_message(conversation_id=CID, text="hi")
    assert len(api.requests) == 3
    assert info.value.idempotency_key == api.requests[0].headers["Idempotency-Key"]


async def test_max_attempts(api: InkboxStub) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(502, {"detail": "x"}))
    with anyio.fail_after(5):
        async with InkboxClient(KEY, api.url, max_attempts=1) as c:
            with pytest.raises(ServerError):
                await c.get_triage_number()
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"to": "5555550142", "text": "x"}, "E.164"),
        ({"to": "+05555550142", "text": "x"}, "E.164"),
        ({"conversation_id": CID, "to": "+15555550142", "text": "x"}, "exactly one"),
        ({"text": "x"}, "exactly one"),
        ({"conversation_id": CID}, "text or a media URL"),
        ({"conversation_id": CID, "text": "   "}, "text or a media URL"),
        ({"conversation_id": CID, "media_urls": ["a", "b"]}, "media_urls"),
        ({"conversation_id": CID, "text": "x" * 18_997}, "text"),
        ({"conversation_id": CID, "text": "\ud800 lone surrogate"}, "text"),
        ({"conversation_id": CID, "text": 42}, "text"),
        ({"conversation_id": 42, "text": "x"}, "conversation_id"),
        ({"conversation_id": CID, "text": "x", "send_style": "wobble"}, "send_style"),
        ({"to": "+15555550142", "text": "x", "reply_to_message_id": CID}, "reply_to_message_id"),
        ({"conversation_id": CID, "text": "x", "idempotency_key": " "}, "idempotency_key"),
        ({"conversation_id": CID, "text": "x", "idempotency_key": "k" * 256}, "idempotency_key"),
        ({"conversation_id": CID, "text": "x", "idempotency_key": "clé"}, "idempotency_key"),
    ],
)
async def test_invalid_sends_are_refused_before_any_request(
    api: InkboxStub, client: InkboxClient, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await client.send_message(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    assert api.requests == []


@pytest.mark.parametrize(
    "text", ["Friday 3pm works — booked.", '😀 \u2028 "q" \\ \n\t\x00 </script>', "x" * 18_996]
)
async def test_a_text_reply_is_sent_exactly_as_the_request_model_dumps_it(
    api: InkboxStub, client: InkboxClient, text: str
) -> None:
    api.reply("POST", MSG, sent_reply())
    with anyio.fail_after(5):
        await client.send_message(conversation_id=CID, text=text, idempotency_key="k-1")
    (req,) = api.requests
    expected = SendMessage(conversation_id=CID, text=text).model_dump_json(exclude_none=True)
    assert req.body == expected.encode()


async def test_invalid_request_lists_the_fields(client: InkboxClient) -> None:
    with pytest.raises(InvalidRequest) as info:
        await client.send_message(to="12", text="x")
    assert info.value.errors[0]["loc"] == "to"


# --- typed errors -----------------------------------------------------------------------------

ERROR_CASES: list[tuple[int, Any, type[InkboxError], str | None]] = [
    (400, {"detail": "Identity is not iMessage-enabled"}, BadRequest, None),
    (401, {"detail": "Invalid API key"}, Unauthorized, None),
    (403, {"detail": "Admin key required"}, Forbidden, None),
    (
        403,
        {
            "detail": {
                "error": "recipient_blocked",
                "message": "blocked",
                "matched_rule_id": "e2f4a6c8-0b1d-4e3f-9a5b-7c9d1e3f5a70",
                "address": "+15555550199",
                "reason": "contact_rule",
            }
        },
        RecipientBlocked,
        "recipient_blocked",
    ),
    (
        404,
        {
            "detail": {
                "error": "no_assignment",
                "message": "not connected",
                "connect_command": "connect @my-agent",
                "router_number": "+15550100000",
            }
        },
        NotConnected,
        "no_assignment",
    ),
    (404, {"detail": "Message not found"}, NotFound, None),
    (
        409,
        {"detail": {"error": "conversation_released", "message": "released"}},
        ConversationInactive,
        "conversation_released",
    ),
    (
        409,
        {"detail": {"error": "recipient_has_not_messaged", "message": "silent"}},
        ConversationInactive,
        "recipient_has_not_messaged",
    ),
    (
        409,
        {"detail": {"error": "idempotency_key_reused", "message": "different body"}},
        IdempotencyKeyReused,
        "idempotency_key_reused",
    ),
    (
        409,
        {"detail": {"message": "rule exists", "existing_rule_id": "e2f4a6c8-0b1d-4e3f"}},
        DuplicateContactRule,
        "duplicate_contact_rule",
    ),
    (
        413,
        {"detail": {"error": "media_too_large", "limit_bytes": 10485760}},
        PayloadTooLarge,
        "media_too_large",
    ),
    (
        422,
        {"detail": {"error": "recipient_not_e164", "message": "receive-only"}},
        RecipientNotE164,
        "recipient_not_e164",
    ),
    (
        422,
        {"detail": [{"loc": ["body", "text"], "msg": "too long", "type": "value_error"}]},
        Unprocessable,
        None,
    ),
    (500, {"detail": "Internal Server Error"}, ServerError, None),
]


@pytest.mark.parametrize(("status", "body", "error_type", "code"), ERROR_CASES)
async def test_error_statuses_map_to_types(
    api: InkboxStub,
    client: InkboxClient,
    status: int,
    body: Any,
    error_type: type[InkboxError],
    code: str | None,
) -> None:
    api.reply("POST", MSG, Reply(status, body))
    with anyio.fail_after(5), pytest.raises(InkboxError) as info:
        await client.send_message(conversation_id=CID, text="hi", idempotency_key="k-err")
    error = info.value
    assert type(error) is error_type
    assert error.status == status
    assert error.code == code
    assert error.idempotency_key == "k-err"
    assert len(api.requests) == 1  # none of these is retried
    assert str(status) in str(error)


async def test_error_details_are_exposed(api: InkboxStub, client: InkboxClient) -> None:
    blocked, not_connected, duplicate = ERROR_CASES[3][1], ERROR_CASES[4][1], ERROR_CASES[9][1]
    api.reply("POST", MSG, Reply(403, blocked), Reply(404, not_connected), Reply(409, duplicate))
    with anyio.fail_after(5):
        with pytest.raises(RecipientBlocked) as b:
            await client.send_message(conversation_id=CID, text="hi")
        with pytest.raises(NotConnected) as n:
            await client.send_message(to="+15555550142", text="hi")
        with pytest.raises(DuplicateContactRule) as d:
            await client.send_message(conversation_id=CID, text="hi")
    assert b.value.matched_rule_id == "e2f4a6c8-0b1d-4e3f-9a5b-7c9d1e3f5a70"
    assert b.value.address == "+15555550199"
    assert n.value.connect_command == "connect @my-agent"
    assert n.value.router_number == "+15550100000"
    assert d.value.existing_rule_id == "e2f4a6c8-0b1d-4e3f"


async def test_agent_support_is_kept(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(404, EX["error_envelope"]))
    with anyio.fail_after(5), pytest.raises(NotFound) as info:
        await client.get_triage_number()
    assert info.value.agent_support == "optional escalation text"
    assert info.value.message == "human readable string OR structured object"


async def test_plain_text_not_connected_404_on_send_by_number(
    api: InkboxStub, client: InkboxClient
) -> None:
    detail = {"detail": "No assignment. Text connect @my-agent to +15550100000 first."}
    api.reply("POST", MSG, Reply(404, detail))
    with anyio.fail_after(5):
        with pytest.raises(NotConnected) as info:
            await client.send_message(to="+15555550142", text="hi", idempotency_key="k-nc")
        assert info.value.idempotency_key == "k-nc"
        # By conversation id the same text is a plain not-found.
        with pytest.raises(NotFound) as plain:
            await client.send_message(conversation_id=CID, text="hi")
    assert type(plain.value) is NotFound


@pytest.mark.parametrize("status", [502, 503, 504, 429])
async def test_retryable_statuses_are_retried_then_raised(
    api: InkboxStub, client: InkboxClient, status: int
) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(status, {"detail": "busy"}))
    with anyio.fail_after(10), pytest.raises(InkboxError) as info:
        await client.get_triage_number()
    assert info.value.status == status
    assert isinstance(info.value, RateLimited if status == 429 else ServerError)
    assert len(api.requests) == 3


async def test_html_error_page_becomes_the_message(api: InkboxStub, client: InkboxClient) -> None:
    page = b"<html><body>Bad gateway from the proxy</body></html>"
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(500, raw=page))
    with anyio.fail_after(5), pytest.raises(ServerError) as info:
        await client.get_triage_number()
    assert "Bad gateway from the proxy" in info.value.message


async def test_empty_error_body(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("DELETE", "/api/v1/imessage/reactions/r1", Reply(404))
    with anyio.fail_after(5), pytest.raises(NotFound) as info:
        await client.remove_reaction("r1")
    assert info.value.message == "HTTP 404"


async def test_unknown_4xx_is_a_plain_inkbox_error(api: InkboxStub, client: InkboxClient) -> None:
    quota = {"detail": {"error": "recipient_blocked", "message": "quota"}}
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(402, quota))
    with anyio.fail_after(5), pytest.raises(InkboxError) as info:
        await client.get_triage_number()
    # A known code under an unexpected status keeps the status family.
    assert type(info.value) is InkboxError
    assert info.value.code == "recipient_blocked"


# --- unreadable answers and transport failures ------------------------------------------------


async def test_undecodable_success_is_retried_then_a_transport_error(
    api: InkboxStub, client: InkboxClient
) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, raw=b'{"number": "+1'))
    with anyio.fail_after(10), pytest.raises(TransportError, match="not JSON"):
        await client.get_triage_number()
    assert len(api.requests) == 3


async def test_undecodable_send_answer_retries_with_the_same_key(
    api: InkboxStub, client: InkboxClient
) -> None:
    api.reply("POST", MSG, Reply(201, raw=b"{"), sent_reply())
    with anyio.fail_after(10):
        await client.send_message(conversation_id=CID, text="x")
    assert len({r.headers["Idempotency-Key"] for r in api.requests}) == 1
    assert len(api.requests) == 2


async def test_wrong_shape_is_not_retried(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", Reply(200, {"unexpected": True}))
    with anyio.fail_after(5), pytest.raises(TransportError, match="expected shape"):
        await client.get_triage_number()
    assert len(api.requests) == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retried_then_raised() -> None:
    port = closed_port()
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with InkboxClient(KEY, f"http://127.0.0.1:{port}") as c:
            with pytest.raises(ConnectError) as info:
                await c.send_message(conversation_id=CID, text="x", idempotency_key="k-refused")
    assert isinstance(info.value, TransportError)
    assert info.value.idempotency_key == "k-refused"
    assert "cannot connect" in str(info.value)
    retries = [entry for entry in logs if entry["event"] == "inkbox.retry"]
    assert [entry["attempt"] for entry in retries] == [1, 2]


async def test_timeout_is_a_transport_error(api: InkboxStub) -> None:
    api.reply("GET", "/api/v1/imessage/triage-number", api.hang())
    with anyio.fail_after(10):
        async with InkboxClient(KEY, api.url, timeout=0.2, max_attempts=2) as c:
            with pytest.raises(TransportError, match=r"no answer within 0\.2 s"):
                await c.get_triage_number()
    assert len(api.requests) == 2


async def test_reset_mid_send_is_retried_with_the_same_key() -> None:
    attempts: list[Request] = []

    def flaky(request: Request) -> Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise TransportError("connection reset by peer")
        return Response(
            201, {"content-type": "application/json"}, json.dumps(EX["send_response"]).encode()
        )

    with anyio.fail_after(5):
        async with InkboxClient(KEY, "http://127.0.0.1:9", transport=MockTransport(flaky)) as c:
            await c.send_message(conversation_id=CID, text="x")
    assert len(attempts) == 2
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]
    assert attempts[0].body == attempts[1].body


async def test_non_idempotent_create_is_not_retried_after_a_reset() -> None:
    attempts: list[Request] = []

    async def reset(request: Request) -> Response:
        attempts.append(request)
        raise TransportError("connection reset by peer")

    with anyio.fail_after(5):
        async with InkboxClient(KEY, "http://127.0.0.1:9", transport=MockTransport(reset)) as c:
            with pytest.raises(TransportError):
                await c.create_identity("my-agent")
    assert len(attempts) == 1


async def test_non_idempotent_create_is_retried_after_a_refusal(
    api: InkboxStub, client: InkboxClient
) -> None:
    api.reply(
        "POST",
        "/api/v1/identities/",
        Reply(503, {"detail": "down"}),
    )
    with anyio.fail_after(5), pytest.raises(ServerError):
        await client.create_identity("my-agent")
    assert len(api.requests) == 1
    api.requests.clear()
    api.reply(
        "POST", "/api/v1/identities/", Reply(429, {"detail": "slow"}), Reply(201, EX["identity"])
    )
    with anyio.fail_after(5):
        identity = await client.create_identity("my-agent")
    assert identity.agent_handle == "my-agent"
    assert len(api.requests) == 2


# --- pagination -------------------------------------------------------------------------------


def paged(
    rows: list[dict[str, Any]],
) -> Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request, body: bytes) -> web.StreamResponse:
        limit = int(request.query["limit"])
        offset = int(request.query["offset"])
        return web.json_response(rows[offset : offset + limit])

    return serve


def message_rows(n: int) -> list[dict[str, Any]]:
    return [{**EX["message"], "id": str(uuid.UUID(int=i)), "content": f"m{i}"} for i in range(n)]


async def test_iter_messages_walks_every_page(api: InkboxStub, client: InkboxClient) -> None:
    rows = message_rows(120)
    api.reply("GET", MSG, paged(rows))
    with anyio.fail_after(5):
        seen = [m.content async for m in client.iter_messages(conversation_id=CID, page_size=50)]
    assert seen == [f"m{i}" for i in range(120)]
    pages = [(int(r.query["limit"]), int(r.query["offset"])) for r in api.requests]
    assert pages == [(50, 0), (50, 50), (50, 100)]
    assert all(r.query["conversation_id"] == CID for r in api.requests)


async def test_iter_stops_after_an_empty_page_on_exact_multiples(
    api: InkboxStub, client: InkboxClient
) -> None:
    api.reply("GET", MSG, paged(message_rows(100)))
    with anyio.fail_after(5):
        seen = [m async for m in client.iter_messages(page_size=50)]
    assert len(seen) == 100
    assert [int(r.query["offset"]) for r in api.requests] == [0, 50, 100]


async def test_breaking_out_of_an_iterator_early(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("GET", MSG, paged(message_rows(120)))
    with anyio.fail_after(5):
        async for message in client.iter_messages(page_size=50):
            assert message.content == "m0"
            break
        # The client stays usable, and no page past the first was fetched.
        await client.list_messages(limit=1)
    assert [int(r.query["offset"]) for r in api.requests] == [0, 0]


async def test_list_messages_sends_the_filters(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("GET", MSG, Reply(200, [EX["message"]]))
    with anyio.fail_after(5):
        page = await client.list_messages(
            agent_identity_id="id-1",
            is_read=False,
            is_blocked=True,
            include_groups=True,
            start_datetime=date(2026, 6, 1),
            end_datetime=datetime(2026, 6, 9, 12, 0, tzinfo=UTC),
            tz="Europe/Paris",
            limit=10,
            offset=20,
        )
    assert [m.to_wire() for m in page] == [EX["message"]]
    assert dict(api.requests[0].query) == {
        "agent_identity_id": "id-1",
        "is_read": "false",
        "is_blocked": "true",
        "include_groups": "true",
        "start_datetime": "2026-06-01",
        "end_datetime": "2026-06-09T12:00:00+00:00",
        "tz": "Europe/Paris",
        "limit": "10",
        "offset": "20",
    }


async def test_iter_conversations_and_assignments(api: InkboxStub, client: InkboxClient) -> None:
    summaries = [{**EX["conversation_summary"], "id": str(uuid.UUID(int=i))} for i in range(7)]
    assignments = [{**EX["assignment"], "id": str(uuid.UUID(int=i))} for i in range(5)]
    api.reply("GET", "/api/v1/imessage/conversations", paged(summaries))
    api.reply("GET", "/api/v1/imessage/assignments", paged(assignments))
    with anyio.fail_after(5):
        convos = [c.id async for c in client.iter_conversations(include_groups=False, page_size=3)]
        links = [a.id async for a in client.iter_assignments(agent_identity_id="i", page_size=2)]
    assert convos == [s["id"] for s in summaries]
    assert links == [a["id"] for a in assignments]
    assert len(api.calls("GET", "/api/v1/imessage/conversations")) == 3
    assert len(api.calls("GET", "/api/v1/imessage/assignments")) == 3
    assert api.calls("GET", "/api/v1/imessage/conversations")[0].query["include_groups"] == "false"


async def test_iter_contact_rules(api: InkboxStub, client: InkboxClient) -> None:
    rules = [{**EX["contact_rule"], "id": str(uuid.UUID(int=i))} for i in range(4)]
    api.reply("GET", "/api/v1/imessage/identities/my-agent/contact-rules", paged(rules))
    api.reply("GET", "/api/v1/imessage/contact-rules", paged(rules))
    with anyio.fail_after(5):
        mine = [
            r.id async for r in client.iter_contact_rules("@my-agent", action="block", page_size=3)
        ]
        org = [r.id async for r in client.iter_all_contact_rules(direction="inbound", page_size=4)]
    assert mine == org == [r["id"] for r in rules]
    first = api.calls("GET", "/api/v1/imessage/identities/my-agent/contact-rules")[0]
    assert first.query["action"] == "block"
    assert api.calls("GET", "/api/v1/imessage/contact-rules")[0].query["direction"] == "inbound"


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (201, 0), (50, -1)])
async def test_page_bounds_are_checked_locally(
    api: InkboxStub, client: InkboxClient, limit: int, offset: int
) -> None:
    with pytest.raises(InvalidRequest):
        await client.list_messages(limit=limit, offset=offset)
    with pytest.raises(InvalidRequest):
        await client.list_conversations(limit=limit, offset=offset)
    assert api.requests == []


async def test_iter_page_size_is_checked_at_once(client: InkboxClient) -> None:
    with pytest.raises(InvalidRequest):
        client.iter_messages(page_size=500)


# --- media ------------------------------------------------------------------------------------


def parse_multipart(req: Any) -> tuple[str | None, str | None, str, bytes]:
    raw = b"Content-Type: " + req.headers["Content-Type"].encode() + b"\r\n\r\n" + req.body
    message = BytesParser(policy=HTTP).parsebytes(raw)
    (part,) = message.iter_parts()
    payload = part.get_payload(decode=True)
    return (
        part.get_param("name", header="content-disposition"),
        part.get_filename(),
        part.get_content_type(),
        payload,
    )


async def test_upload_bytes(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", "/api/v1/imessage/media", Reply(201, EX["media_upload"]))
    content = bytes(range(256)) * 10
    with anyio.fail_after(5):
        upload = await client.upload_media(content, filename="pic.png")
    assert upload.media_url == EX["media_upload"]["media_url"]
    name, filename, ctype, payload = parse_multipart(api.requests[0])
    assert (name, filename, ctype) == ("file", "pic.png", "image/png")
    assert payload == content
    assert "Idempotency-Key" not in api.requests[0].headers


async def test_upload_path_and_file(api: InkboxStub, client: InkboxClient, tmp_path: Path) -> None:
    api.reply("POST", "/api/v1/imessage/media", Reply(201, EX["media_upload"]))
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.7 test")
    with anyio.fail_after(5):
        await client.upload_media(path)
        await client.upload_media(str(path), content_type="application/x-custom")
        with path.open("rb") as handle:
            await client.upload_media(handle)
        await client.upload_media(io.BytesIO(b"blob"))
        await client.upload_media(b"raw", filename='we"ird\nname.bin')
    parts = [parse_multipart(r) for r in api.requests]
    assert [(p[1], p[2], p[3]) for p in parts] == [
        ("invoice.pdf", "application/pdf", b"%PDF-1.7 test"),
        ("invoice.pdf", "application/x-custom", b"%PDF-1.7 test"),
        ("invoice.pdf", "application/pdf", b"%PDF-1.7 test"),
        ("upload", "application/octet-stream", b"blob"),
        ("we%22ird%0Aname.bin", "application/octet-stream", b"raw"),
    ]


async def test_file_is_read_from_its_position(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", "/api/v1/imessage/media", Reply(201, EX["media_upload"]))
    stream = io.BytesIO(b"headerBODY")
    stream.seek(6)
    with anyio.fail_after(5):
        await client.upload_media(stream, filename="b.txt")
    assert parse_multipart(api.requests[0])[3] == b"BODY"


async def test_oversize_media_is_refused_before_any_upload(
    api: InkboxStub, client: InkboxClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.mov"
    with big.open("wb") as handle:
        handle.truncate(10 * MiB + 1)  # sparse: no 10 MiB written to disk
    with anyio.fail_after(5):
        with pytest.raises(MediaTooLarge) as info:
            await client.upload_media(big)
        assert (info.value.size, info.value.limit) == (10 * MiB + 1, 10 * MiB)
        with pytest.raises(MediaTooLarge):
            await client.upload_media(b"\0" * (10 * MiB + 1))
        with pytest.raises(MediaTooLarge), big.open("rb") as handle:
            await client.upload_media(handle)
        with pytest.raises(MediaTooLarge):
            await client.upload_media(io.BytesIO(b"\0" * (10 * MiB + 5)))
        with pytest.raises(MediaTooLarge):
            await client.upload_media(memoryview(b"\0" * (10 * MiB + 1)))
    assert isinstance(info.value, ValueError)
    assert api.requests == []


class Unseekable(io.RawIOBase):
    """A stream that cannot tell its size, like a pipe."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        buffer[:n] = b"\1" * n
        self._left -= n
        return n


async def test_unseekable_stream_is_capped(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", "/api/v1/imessage/media", Reply(201, EX["media_upload"]))
    with anyio.fail_after(10):
        with pytest.raises(MediaTooLarge):
            await client.upload_media(io.BufferedReader(Unseekable(10 * MiB + 1)))
        assert api.requests == []
        await client.upload_media(io.BufferedReader(Unseekable(1000)))
    assert parse_multipart(api.requests[0])[3] == b"\1" * 1000


async def test_exactly_ten_mib_is_uploaded(api: InkboxStub, client: InkboxClient) -> None:
    api.reply("POST", "/api/v1/imessage/media", Reply(201, EX["media_upload"]))
    with anyio.fail_after(10):
        await client.upload_media(b"\0" * (10 * MiB))
    assert len(parse_multipart(api.requests[0])[3]) == 10 * MiB


async def test_server_side_413(api: InkboxStub, client: InkboxClient) -> None:
    api.reply(
        "POST", "/api/v1/imessage/media", Reply(413, {"detail": {"error": "media_too_large"}})
    )
    with anyio.fail_after(5), pytest.raises(PayloadTooLarge):
        await client.upload_media(b"x")


# --- every endpoint: method, path, query, body and parsed result ------------------------------

SUB_ID = EX["webhook_subscription"]["id"]
RULE_ID = EX["contact_rule"]["id"]
IDENTITY_ID = EX["identity"]["id"]
Call = Callable[[InkboxClient], Awaitable[Any]]

ENDPOINTS: list[tuple[str, Call, str, str, dict[str, str], Any, Reply, Any]] = [
    (
        "get_message",
        lambda c: c.get_message("m/1"),
        "GET",
        "/api/v1/imessage/messages/m%2F1",
        {},
        None,
        Reply(200, EX["message"]),
        EX["message"],
    ),
    (
        "list_conversations",
        lambda c: c.list_conversations(agent_identity_id="i", is_blocked=False),
        "GET",
        "/api/v1/imessage/conversations",
        {"agent_identity_id": "i", "is_blocked": "false", "limit": "50", "offset": "0"},
        None,
        Reply(200, [EX["conversation_summary"]]),
        [EX["conversation_summary"]],
    ),
    (
        "get_conversation",
        lambda c: c.get_conversation(CID, agent_identity_id="i"),
        "GET",
        f"/api/v1/imessage/conversations/{CID}",
        {"agent_identity_id": "i"},
        None,
        Reply(200, EX["conversation"]),
        EX["conversation"],
    ),
    (
        "list_assignments",
        lambda c: c.list_assignments(limit=5),
        "GET",
        "/api/v1/imessage/assignments",
        {"limit": "5", "offset": "0"},
        None,
        Reply(200, [EX["assignment"]]),
        [EX["assignment"]],
    ),
    (
        "release_assignment",
        lambda c: c.release_assignment("a1"),
        "DELETE",
        "/api/v1/imessage/assignments/a1",
        {},
        None,
        Reply(204),
        None,
    ),
    (
        "mark_read",
        lambda c: c.mark_read(CID),
        "POST",
        "/api/v1/imessage/mark-read",
        {},
        {"conversation_id": CID},
        Reply(200, EX["mark_read_result"]),
        EX["mark_read_result"],
    ),
    (
        "send_typing",
        lambda c: c.send_typing(CID),
        "POST",
        "/api/v1/imessage/typing",
        {},
        {"conversation_id": CID},
        Reply(200, {"status": "sent"}),
        None,
    ),
    (
        "send_reaction",
        lambda c: c.send_reaction("m1", "love"),
        "POST",
        "/api/v1/imessage/reactions",
        {},
        {"message_id": "m1", "reaction": "love", "part_index": 0},
        Reply(201, EX["reaction"]),
        EX["reaction"],
    ),
    (
        "remove_reaction",
        lambda c: c.remove_reaction("r1"),
        "DELETE",
        "/api/v1/imessage/reactions/r1",
        {},
        None,
        Reply(204),
        None,
    ),
    (
        "list_contact_rules",
        lambda c: c.list_contact_rules("@my-agent", direction="both", limit=3, offset=6),
        "GET",
        "/api/v1/imessage/identities/my-agent/contact-rules",
        {"direction": "both", "limit": "3", "offset": "6"},
        None,
        Reply(200, [EX["contact_rule"]]),
        [EX["contact_rule"]],
    ),
    (
        "create_contact_rule",
        lambda c: c.create_contact_rule("my-agent", action="block", match_target="+15555550199"),
        "POST",
        "/api/v1/imessage/identities/my-agent/contact-rules",
        {},
        {"action": "block", "match_target": "+15555550199", "match_type": "exact_number"},
        Reply(201, EX["contact_rule"]),
        EX["contact_rule"],
    ),
    (
        "get_contact_rule",
        lambda c: c.get_contact_rule("my-agent", RULE_ID),
        "GET",
        f"/api/v1/imessage/identities/my-agent/contact-rules/{RULE_ID}",
        {},
        None,
        Reply(200, EX["contact_rule"]),
        EX["contact_rule"],
    ),
    (
        "update_contact_rule",
        lambda c: c.update_contact_rule(
            "my-agent", RULE_ID, action="allow", status="paused", direction="inbound"
        ),
        "PATCH",
        f"/api/v1/imessage/identities/my-agent/contact-rules/{RULE_ID}",
        {},
        {"action": "allow", "status": "paused", "direction": "inbound"},
        Reply(200, EX["contact_rule"]),
        EX["contact_rule"],
    ),
    (
        "delete_contact_rule",
        lambda c: c.delete_contact_rule("my-agent", RULE_ID),
        "DELETE",
        f"/api/v1/imessage/identities/my-agent/contact-rules/{RULE_ID}",
        {},
        None,
        Reply(204),
        None,
    ),
    (
        "list_all_contact_rules",
        lambda c: c.list_all_contact_rules(agent_identity_id=IDENTITY_ID, action="allow"),
        "GET",
        "/api/v1/imessage/contact-rules",
        {"agent_identity_id": IDENTITY_ID, "action": "allow", "limit": "50", "offset": "0"},
        None,
        Reply(200, [EX["contact_rule"]]),
        [EX["contact_rule"]],
    ),
    (
        "create_identity",
        lambda c: c.create_identity(
            "@my-agent", display_name="My Agent", description="d", imessage_enabled=True
        ),
        "POST",
        "/api/v1/identities/",
        {},
        {
            "agent_handle": "my-agent",
            "display_name": "My Agent",
            "description": "d",
            "imessage_enabled": True,
        },
        Reply(201, EX["identity"]),
        EX["identity"],
    ),
    (
        "list_identities",
        lambda c: c.list_identities(),
        "GET",
        "/api/v1/identities/",
        {},
        None,
        Reply(200, [EX["identity"]]),
        [EX["identity"]],
    ),
    (
        "get_identity",
        lambda c: c.get_identity("@my-agent"),
        "GET",
        "/api/v1/identities/my-agent",
        {},
        None,
        Reply(200, EX["identity"]),
        EX["identity"],
    ),
    (
        "update_identity",
        lambda c: c.update_identity(
            "my-agent",
            imessage_enabled=True,
            filter_mode="whitelist",
            display_name="New",
            description="",
        ),
        "PATCH",
        "/api/v1/identities/my-agent",
        {},
        {
            "imessage_enabled": True,
            "imessage_filter_mode": "whitelist",
            "display_name": "New",
            "description": "",
        },
        Reply(200, EX["identity"]),
        EX["identity"],
    ),
    (
        "create_signing_key",
        lambda c: c.create_signing_key("my-agent"),
        "POST",
        "/api/v1/identities/my-agent/signing-key",
        {},
        {},
        Reply(200, EX["signing_key"]),
        EX["signing_key"],
    ),
    (
        "get_signing_key_status",
        lambda c: c.get_signing_key_status("my-agent"),
        "GET",
        "/api/v1/identities/my-agent/signing-key",
        {},
        None,
        Reply(200, EX["signing_key_status"]),
        EX["signing_key_status"],
    ),
    (
        "create_subscription",
        lambda c: c.create_subscription(
            agent_identity_id=IDENTITY_ID,
            url="https://bot.example/webhook",
            event_types=("imessage.received",),
            auth_token="tok",
        ),
        "POST",
        "/api/v1/webhooks/subscriptions",
        {},
        {
            "agent_identity_id": IDENTITY_ID,
            "url": "https://bot.example/webhook",
            "event_types": ["imessage.received"],
            "auth_token": "tok",
        },
        Reply(201, EX["webhook_subscription_created"]),
        EX["webhook_subscription_created"],
    ),
    (
        "list_subscriptions",
        lambda c: c.list_subscriptions(agent_identity_id=IDENTITY_ID, event_type="imessage.sent"),
        "GET",
        "/api/v1/webhooks/subscriptions",
        {"agent_identity_id": IDENTITY_ID, "event_type": "imessage.sent"},
        None,
        Reply(200, {"subscriptions": [EX["webhook_subscription"]]}),
        [EX["webhook_subscription"]],
    ),
    (
        "get_subscription",
        lambda c: c.get_subscription(SUB_ID),
        "GET",
        f"/api/v1/webhooks/subscriptions/{SUB_ID}",
        {},
        None,
        Reply(200, EX["webhook_subscription"]),
        EX["webhook_subscription"],
    ),
    (
        "update_subscription",
        lambda c: c.update_subscription(
            SUB_ID, url="https://bot.example/hook2", event_types=["imessage.sent"], auth_token="t2"
        ),
        "PATCH",
        f"/api/v1/webhooks/subscriptions/{SUB_ID}",
        {},
        {"url": "https://bot.example/hook2", "event_types": ["imessage.sent"], "auth_token": "t2"},
        Reply(200, EX["webhook_subscription"]),
        EX["webhook_subscription"],
    ),
    (
        "delete_subscription",
        lambda c: c.delete_subscription(SUB_ID),
        "DELETE",
        f"/api/v1/webhooks/subscriptions/{SUB_ID}",
        {},
        None,
        Reply(204),
        None,
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "path", "query", "body", "reply", "expected"),
    [case[1:] for case in ENDPOINTS],
    ids=[case[0] for case in ENDPOINTS],
)
async def test_endpoint(
    api: InkboxStub,
    client: InkboxClient,
    call: Call,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    reply: Reply,
    expected: Any,
) -> None:
    api.reply(method, path, reply)
    with anyio.fail_after(5):
        result = await call(client)
    (req,) = api.requests
    assert (req.method, req.path) == (method, path)
    assert dict(req.query) == query
    if body is None:
        assert req.body == b""
    else:
        assert req.json() == body
        assert req.headers["Content-Type"] == "application/json"
    if isinstance(result, list):
        assert [item.to_wire() for item in result] == expected
    elif result is not None:
        assert result.to_wire() == expected
    else:
        assert expected is None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.send_reaction("m1", "custom"),
        lambda c: c.send_reaction("m1", "love", part_index=-1),
        lambda c: c.create_contact_rule("h", action="block", match_target="555"),
        lambda c: c.create_contact_rule("h", action="shun", match_target="+15555550199"),
        lambda c: c.update_contact_rule("h", "r"),
        lambda c: c.update_contact_rule("h", "r", status="deleted"),
        lambda c: c.list_contact_rules("h", direction="sideways"),
        lambda c: c.update_identity("h"),
        lambda c: c.update_identity("h", filter_mode="greylist"),
        lambda c: c.create_subscription(agent_identity_id="i", url="u", event_types=[]),
        lambda c: c.create_subscription(agent_identity_id="i", url="u", event_types=["a", "a"]),
        lambda c: c.update_subscription("s"),
        lambda c: c.update_subscription("s", event_types=[]),
    ],
)
async def test_invalid_arguments_are_refused_locally(
    api: InkboxStub, client: InkboxClient, call: Call
) -> None:
    with pytest.raises(InvalidRequest):
        await call(client)
    assert api.requests == []


async def test_send_reaction_accepts_the_enum(api: InkboxStub, client: InkboxClient) -> None:
    from imbot.models import TapbackKind

    api.reply("POST", "/api/v1/imessage/reactions", Reply(201, EX["reaction"]))
    with anyio.fail_after(5):
        reaction = await client.send_reaction("m1", TapbackKind.EYES, part_index=2)
    assert api.requests[0].json() == {"message_id": "m1", "reaction": "eyes", "part_index": 2}
    assert reaction.id == EX["reaction"]["id"]
