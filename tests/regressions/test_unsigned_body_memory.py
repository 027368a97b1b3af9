"""Requests that cannot be signed cost no body buffering (issue 10, item 5).

A request without any ``X-Inkbox-*`` header, or with a stale timestamp, had its whole body
(up to the 1 MiB cap) buffered before its headers were looked at: 400 such stalled requests
took the bot from 52 to 463 MiB, not given back. Now the signature headers are judged
first, and such a request is answered 401 before a byte of its body is read.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import anyio
import pytest
import structlog

from imbot.bot.server import create_app, serve_app
from imbot.events import AnyEvent
from imbot.webhooks import sign
from tests.support.botprocess import SECRET, event_body, imbot_run, post_webhook

MIB = 1_048_576
STALLED = 400
PIECE = 64 * 1024


def request_head(headers: dict[str, str], length: int) -> bytes:
    lines = [
        "POST /webhook HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def unsignable_headers(index: int) -> dict[str, str]:
    """Half send no ``X-Inkbox-*`` header, half a signature an hour old."""
    if index % 2:
        return {}
    return sign(b"x" * MIB, SECRET, timestamp=int(time.time()) - 3600)


async def send_and_stall(port: int, index: int, stalled: list[anyio.abc.SocketStream]) -> None:
    """Announce 1 MiB, send all of it but the last byte, and keep the connection open."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    stalled.append(stream)
    piece = b"x" * PIECE
    try:
        await stream.send(request_head(unsignable_headers(index), MIB))
        for sent in range(0, MIB - 1, PIECE):
            await stream.send(piece[: min(PIECE, MIB - 1 - sent)])
    except (anyio.BrokenResourceError, OSError):
        pass  # the server answered and closed: what it should do


async def flood(port: int) -> list[anyio.abc.SocketStream]:
    stalled: list[anyio.abc.SocketStream] = []
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            for index in range(STALLED):
                tg.start_soon(send_and_stall, port, index, stalled)
    return stalled


def test_400_stalled_unsigned_1mib_requests_raise_rss_by_less_than_50_mib(tmp_path: Path) -> None:
    with imbot_run(tmp_path) as bot:
        for warm_up in range(3):
            assert post_webhook(bot.port, event_body(f"evt_warm_{warm_up}")) == 200
        time.sleep(0.2)
        before = bot.rss()

        async def measure() -> int:
            stalled = await flood(bot.port)
            try:
                await anyio.sleep(0.5)
                return bot.rss()
            finally:
                for stream in stalled:
                    await stream.aclose()

        during = anyio.run(measure)
        assert post_webhook(bot.port, event_body("evt_after")) == 200
    grown = during - before
    print(f"\nRSS {before / MIB:.1f} MiB -> {during / MIB:.1f} MiB (+{grown / MIB:.1f} MiB)")
    assert grown < 50 * MIB


@pytest.mark.parametrize("index", [1, 0], ids=["no-headers", "stale"])
async def test_an_unsignable_request_is_refused_before_its_body_is_sent(index: int) -> None:
    received: list[AnyEvent] = []

    async def receive(event: AnyEvent, raw: bytes) -> None:
        received.append(event)

    app = create_app(receive=receive, secrets=[SECRET])
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(serve_app, app, port=0))
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(request_head(unsignable_headers(index), MIB))
                reply = b""
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    while True:
                        reply += await stream.receive()
            tg.cancel_scope.cancel()
    # Answered, and the connection closed, with not one byte of the body sent.
    assert reply.startswith(b"HTTP/1.1 401")
    assert reply.endswith(b'{"error":"invalid signature"}')
    rejected = [entry for entry in logs if entry["event"] == "webhook.rejected"]
    assert [entry["reason"] for entry in rejected] == [
        "stale_timestamp" if index == 0 else "missing_header"
    ]
    assert received == []
