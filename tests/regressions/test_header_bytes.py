"""Raw non-ASCII bytes in an ``X-Inkbox-*`` header get 401, not 500 (issue 10, item 9).

A raw 0xff byte in ``X-Inkbox-Signature`` or ``X-Inkbox-Request-Id`` reached the HMAC as a
lone surrogate (aiohttp decodes header bytes with ``surrogateescape``); encoding it raised
``UnicodeEncodeError``, answered 500 with a traceback in the log. Now every ``X-Inkbox-*``
value must be printable ASCII, checked before the body is read: anything else is the usual
401 with a log line giving the reason, and no traceback.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import anyio
import pytest
import structlog

from imbot.bot.server import create_app, serve_app
from imbot.events import AnyEvent
from imbot.webhooks import (
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
)

SECRET = "whsec_header_bytes"
BODY = b'{"id": "evt_1", "event_type": "imessage.received"}'


def raw_request(signature: bytes, request_id: bytes, timestamp: bytes, extra: bytes) -> bytes:
    return (
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n".encode()
        + SIGNATURE_HEADER.encode() + b": " + signature + b"\r\n"
        + REQUEST_ID_HEADER.encode() + b": " + request_id + b"\r\n"
        + TIMESTAMP_HEADER.encode() + b": " + timestamp + b"\r\n"
        + extra
        + b"\r\n"
        + BODY
    )  # fmt: skip


def case(where: str, raw: bytes) -> bytes:
    """A request signed correctly but for ``raw`` bytes placed in the header ``where``."""
    request_id, timestamp = "req_1", str(int(time.time()))
    signature = compute_signature(BODY, SECRET, request_id, timestamp).encode()
    fields = {"signature": signature, "request_id": request_id.encode()}
    fields["timestamp"], fields["extra"] = timestamp.encode(), b""
    if where == "extra":
        fields["extra"] = b"X-Inkbox-Delivery: " + raw + b"\r\n"
    else:
        fields[where] = fields[where][:10] + raw + fields[where][10:]
    return raw_request(
        fields["signature"], fields["request_id"], fields["timestamp"], fields["extra"]
    )


@pytest.mark.parametrize("raw", [b"\xff", "é".encode()], ids=["0xff", "utf8"])
@pytest.mark.parametrize("where", ["signature", "request_id", "timestamp", "extra"])
async def test_non_ascii_bytes_in_an_inkbox_header_get_401_and_no_traceback(
    where: str, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[AnyEvent] = []

    async def receive(event: AnyEvent, body: bytes) -> None:
        received.append(event)

    app = create_app(receive=receive, secrets=[SECRET])
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(serve_app, app, port=0))
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(case(where, raw))
                reply = b""
                while b'"}' not in reply:
                    reply += await stream.receive()
            tg.cancel_scope.cancel()
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert reply.endswith(b'\r\n\r\n{"error":"invalid signature"}')
    assert received == []
    rejected = [entry for entry in logs if entry["event"] == "webhook.rejected"]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "malformed_header"
    assert not [entry for entry in logs if "exc_info" in entry or "exception" in entry]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
