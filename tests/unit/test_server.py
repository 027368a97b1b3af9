"""The webhook server, over real HTTP on 127.0.0.1 with a free port."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web

from imbot.bot.limits import FD_RESERVE, LogThrottle, connection_cap
from imbot.bot.server import create_app, serve_app
from imbot.errors import SetupError
from imbot.events import AnyEvent, MessageReceived
from imbot.webhooks import sign

SECRET = "whsec_test_secret"


def message_body(event_id: str = "evt_1", conversation_id: str = "conv-1", **extra: Any) -> bytes:
    envelope = {
        "id": event_id,
        "event_type": "imessage.received",
        "timestamp": "2026-06-09T14:30:59Z",
        "data": {
            "message": {
                "id": "5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11",
                "conversation_id": conversation_id,
                "direction": "inbound",
                "remote_number": "+15555550142",
                "content": "hello",
                "created_at": "2026-06-09T14:30:58Z",
                "updated_at": "2026-06-09T14:30:58Z",
            },
            "reaction": None,
            "contacts": [],
            "agent_identities": [],
        },
        **extra,
    }
    return json.dumps(envelope).encode()


class Recorder:
    """A receive callable that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[AnyEvent, bytes]] = []

    async def __call__(self, event: AnyEvent, raw: bytes) -> None:
        self.calls.append((event, raw))


@asynccontextmanager
async def running(
    receive: Callable[[AnyEvent, bytes], Awaitable[None]],
    *,
    secrets: Sequence[str] | Callable[[], Sequence[str]] = (SECRET,),
    **options: Any,
) -> AsyncIterator[str]:
    serving = {k: options.pop(k) for k in ("header_timeout", "max_connections") if k in options}
    app = create_app(receive=receive, secrets=secrets, **options)
    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_app, app, port=0, **serving))
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    async with session.post(url, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.read()


async def test_valid_event_is_received_once_and_answered_200() -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(10):
        async with running(recorder) as base, aiohttp.ClientSession() as session:
            status, answer = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert status == 200
    assert json.loads(answer) == {"ok": True}
    assert len(recorder.calls) == 1
    event, raw = recorder.calls[0]
    assert isinstance(event, MessageReceived)
    assert event.id == "evt_1"
    assert event.conversation_id == "conv-1"
    assert raw == body


async def test_any_of_several_secrets_matches_and_callable_secrets_are_read_per_request() -> None:
    recorder = Recorder()
    current = ["whsec_old"]
    body = message_body()
    with anyio.fail_after(10):
        async with (
            running(recorder, secrets=lambda: current) as base,
            aiohttp.ClientSession() as session,
        ):
            status_before, _ = await post(session, base + "/webhook", body, sign(body, "whsec_new"))
            current.append("whsec_new")
            status_after, _ = await post(session, base + "/webhook", body, sign(body, "whsec_new"))
    assert (status_before, status_after) == (401, 200)
    assert len(recorder.calls) == 1


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda body: sign(body, "whsec_wrong"), id="bad-signature"),
        pytest.param(lambda body: sign(body, SECRET, timestamp=int(time.time()) - 301), id="stale"),
        pytest.param(
            lambda body: sign(body, SECRET, timestamp=int(time.time()) + 301), id="future"
        ),
        pytest.param(lambda body: {}, id="no-headers"),
        pytest.param(
            lambda body: {k: v for k, v in sign(body, SECRET).items() if "Signature" not in k},
            id="no-signature",
        ),
        pytest.param(
            lambda body: {**sign(body, SECRET), "X-Inkbox-Timestamp": "yesterday"},
            id="bad-timestamp",
        ),
        pytest.param(lambda body: sign(body + b" ", SECRET), id="body-changed"),
        pytest.param(
            lambda body: {**sign(body, SECRET), "X-Inkbox-Signature": "sha256=abc"},
            id="signature-too-short",
        ),
        pytest.param(
            lambda body: sign(body, SECRET, request_id="r" * 300), id="request-id-too-long"
        ),
    ],
)
async def test_bad_signatures_get_401_without_detail(
    make_headers: Callable[[bytes], dict[str, str]],
) -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with running(recorder) as base, aiohttp.ClientSession() as session:
            status, answer = await post(session, base + "/webhook", body, make_headers(body))
    assert status == 401
    assert json.loads(answer) == {"error": "invalid signature"}
    assert recorder.calls == []
    # The reason is for the operator's log, not for the caller.
    rejected = [entry for entry in logs if entry["event"] == "webhook.rejected"]
    assert len(rejected) == 1
    assert rejected[0]["reason"] not in answer.decode()


async def test_timestamp_window_is_configurable() -> None:
    recorder = Recorder()
    body = message_body()
    headers = sign(body, SECRET, timestamp=int(time.time()) - 100)
    with anyio.fail_after(10):
        async with running(recorder, tolerance=30) as base, aiohttp.ClientSession() as session:
            status, _ = await post(session, base + "/webhook", body, headers)
    assert status == 401
    assert recorder.calls == []


async def test_body_over_the_limit_by_content_length_gets_413() -> None:
    recorder = Recorder()
    body = message_body(padding="x" * 5000)
    with anyio.fail_after(10):
        async with (
            running(recorder, max_body_size=4096) as base,
            aiohttp.ClientSession() as session,
        ):
            status, answer = await post(session, base + "/webhook", body, sign(body, SECRET))
            # The connection stays usable for the next, valid delivery.
            small = message_body()
            status_ok, _ = await post(session, base + "/webhook", small, sign(small, SECRET))
    assert status == 413
    assert json.loads(answer) == {"error": "body too large"}
    assert status_ok == 200
    assert len(recorder.calls) == 1


async def test_chunked_body_over_the_limit_gets_413() -> None:
    recorder = Recorder()
    body = message_body(padding="x" * 50_000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    with anyio.fail_after(10):
        async with (
            running(recorder, max_body_size=8192) as base,
            aiohttp.ClientSession() as session,
        ):
            status, answer = await post(session, base + "/webhook", chunks(), sign(body, SECRET))
    assert status == 413
    assert json.loads(answer) == {"error": "body too large"}
    assert recorder.calls == []


async def test_chunked_body_under_the_limit_is_accepted() -> None:
    recorder = Recorder()
    body = message_body(padding="x" * 3000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    with anyio.fail_after(10):
        async with running(recorder) as base, aiohttp.ClientSession() as session:
            status, _ = await post(session, base + "/webhook", chunks(), sign(body, SECRET))
    assert status == 200
    assert recorder.calls[0][1] == body


async def test_announced_length_over_the_limit_is_refused_before_the_body_arrives() -> None:
    # Only the headers are sent: a 413 proves the server refused on Content-Length alone,
    # without waiting for (or buffering) the 10 MB it was promised.
    recorder = Recorder()
    body = message_body()
    headers = sign(body, SECRET)
    with anyio.fail_after(10):
        async with running(recorder) as base:
            port = int(base.rsplit(":", 1)[1])
            head = (
                "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                + "\r\n"
            ).encode()
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(head)
                reply = b""
                while b"\r\n\r\n" not in reply:
                    reply += await stream.receive()
    assert reply.startswith(b"HTTP/1.1 413")
    assert recorder.calls == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(json.dumps({"event_type": "imessage.received"}).encode(), id="no-id"),
        pytest.param(
            json.dumps(
                {"id": "evt_1", "event_type": "imessage.received", "timestamp": "now", "data": {}}
            ).encode(),
            id="bad-envelope",
        ),
    ],
)
async def test_malformed_events_get_400(body: bytes) -> None:
    recorder = Recorder()
    with anyio.fail_after(10):
        async with running(recorder) as base, aiohttp.ClientSession() as session:
            status, answer = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert status == 400
    assert json.loads(answer) == {"error": "malformed event"}
    assert recorder.calls == []


async def test_malformed_body_with_bad_signature_is_401_not_400() -> None:
    recorder = Recorder()
    body = b"{not json"
    with anyio.fail_after(10):
        async with running(recorder) as base, aiohttp.ClientSession() as session:
            status, _ = await post(session, base + "/webhook", body, sign(body, "whsec_wrong"))
    assert status == 401


async def test_unknown_event_type_is_acknowledged_logged_and_not_received() -> None:
    recorder = Recorder()
    body = json.dumps(
        {
            "id": "evt_new",
            "event_type": "imessage.something_new",
            "timestamp": "2026-06-09T14:30:59Z",
            "data": {"whatever": 1},
        }
    ).encode()
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with running(recorder) as base, aiohttp.ClientSession() as session:
            status, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert status == 200
    assert recorder.calls == []
    unknown = [entry for entry in logs if entry["event"] == "webhook.unknown_event"]
    assert unknown == [
        {
            "event": "webhook.unknown_event",
            "event_type": "imessage.something_new",
            "event_id": "evt_new",
            "log_level": "info",
        }
    ]


async def test_receive_failure_answers_503_so_inkbox_retries() -> None:
    async def broken(event: AnyEvent, raw: bytes) -> None:
        raise RuntimeError("inbox unavailable")

    body = message_body()
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with running(broken) as base, aiohttp.ClientSession() as session:
            status, answer = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert status == 503
    assert b"inbox unavailable" not in answer
    assert any(entry["event"] == "webhook.receive_failed" for entry in logs)


async def test_the_200_does_not_wait_for_handlers() -> None:
    # receive only enqueues; the "handler" waits on an event the test sets after the 200.
    handled = anyio.Event()
    release = anyio.Event()

    async with anyio.create_task_group() as handlers:

        async def slow_handler() -> None:
            await release.wait()
            handled.set()

        async def receive(event: AnyEvent, raw: bytes) -> None:
            handlers.start_soon(slow_handler)

        body = message_body()
        with anyio.fail_after(10):
            async with running(receive) as base, aiohttp.ClientSession() as session:
                started = time.perf_counter()
                status, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
                elapsed = time.perf_counter() - started
            assert status == 200
            assert not handled.is_set()
            release.set()
            await handled.wait()
    assert elapsed < 1.0


async def test_healthz_merges_health() -> None:
    recorder = Recorder()
    with anyio.fail_after(10):
        async with (
            running(recorder, health=lambda: {"lanes": 3}) as base,
            aiohttp.ClientSession() as session,
        ):
            async with session.get(base + "/healthz") as resp:
                status, payload = resp.status, await resp.json()
            async with session.get(base + "/webhook") as resp:
                webhook_get = resp.status
    assert status == 200
    assert payload == {"status": "ok", "lanes": 3}
    assert webhook_get == 405


async def test_custom_path() -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(10):
        async with (
            running(recorder, path="/hooks/inkbox") as base,
            aiohttp.ClientSession() as session,
        ):
            status, _ = await post(session, base + "/hooks/inkbox", body, sign(body, SECRET))
            status_default, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert (status, status_default) == (200, 404)


async def test_serve_app_reports_port_and_closes_on_cancel() -> None:
    app = web.Application()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(serve_app, app, port=0))
            assert port > 0
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.aclose()
            tg.cancel_scope.cancel()
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)


async def test_serve_app_port_in_use_raises_a_clear_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with anyio.fail_after(10), pytest.raises(OSError, match=f"127.0.0.1:{port}") as caught:
            await serve_app(web.Application(), port=port)
    assert "another process" in str(caught.value)


def test_secrets_must_not_be_empty_and_a_lone_string_is_one_key() -> None:
    recorder = Recorder()
    with pytest.raises(SetupError, match="signing key"):
        create_app(receive=recorder, secrets=[])
    with pytest.raises(SetupError, match="signing key"):
        create_app(receive=recorder, secrets=["", ""])


async def test_a_single_string_secret_works() -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(10):
        async with running(recorder, secrets=SECRET) as base, aiohttp.ClientSession() as session:
            status, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert status == 200


# ---------------------------------------------------------------- defending against clients


def raw_head(headers: dict[str, str], length: int, path: str = "/webhook") -> bytes:
    """A POST's request line and headers, announcing ``length`` bytes of body."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_to_close(stream: anyio.abc.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    try:
        while True:
            received += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return received


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="unsigned"),
        pytest.param(sign(b"{}", SECRET, timestamp=int(time.time()) - 3600), id="stale"),
        pytest.param({**sign(b"{}", SECRET), "X-Inkbox-Signature": "md5=1"}, id="bad-shape"),
    ],
)
async def test_headers_are_judged_before_the_body_and_before_its_size(
    headers: dict[str, str],
) -> None:
    # 10 MB announced, not one byte sent: a 401 (not a 413, not a wait) proves the headers
    # were judged first, and the closed connection that nothing more is read.
    recorder = Recorder()
    with anyio.fail_after(5):
        async with (
            running(recorder) as base,
            await anyio.connect_tcp("127.0.0.1", port_of(base)) as stream,
        ):
            await stream.send(raw_head(headers, 10_000_000))
            reply = await read_to_close(stream)
    assert reply.startswith(b"HTTP/1.1 401")
    assert b"Connection: close" in reply
    assert recorder.calls == []


async def test_a_silent_or_half_sent_connection_is_closed_after_the_header_timeout() -> None:
    recorder = Recorder()
    with anyio.fail_after(5):
        async with running(recorder, header_timeout=0.3) as base:
            silent = await anyio.connect_tcp("127.0.0.1", port_of(base))
            half_sent = await anyio.connect_tcp("127.0.0.1", port_of(base))
            await half_sent.send(b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Ink")
            started = anyio.current_time()
            assert await read_to_close(silent) == b""
            assert await read_to_close(half_sent) == b""
            elapsed = anyio.current_time() - started
            await silent.aclose()
            await half_sent.aclose()
    assert 0.2 < elapsed < 1.5


async def test_an_idle_keep_alive_connection_is_closed_after_the_header_timeout() -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(5), structlog.testing.capture_logs() as logs:
        async with (
            running(recorder, header_timeout=0.3) as base,
            await anyio.connect_tcp("127.0.0.1", port_of(base)) as stream,
        ):
            await stream.send(raw_head(sign(body, SECRET), len(body)) + body)
            reply = await read_to_close(stream)
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" not in reply  # kept alive, then closed for being idle
    assert len(recorder.calls) == 1
    # Routine: a connection that went quiet after its answers is not a slow client.
    assert not [entry for entry in logs if entry["event"] == "server.slow_clients_closed"]


async def test_a_request_being_handled_is_not_cut_by_the_header_timeout() -> None:
    async def slow(event: AnyEvent, raw: bytes) -> None:
        await anyio.sleep(0.8)

    body = message_body()
    with anyio.fail_after(5):
        async with (
            running(slow, header_timeout=0.2) as base,
            aiohttp.ClientSession() as session,
        ):
            status, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert status == 200


async def test_a_body_slower_than_the_body_timeout_gets_408_and_a_closed_connection() -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(5), structlog.testing.capture_logs() as logs:
        async with (
            running(recorder, body_timeout=0.3) as base,
            await anyio.connect_tcp("127.0.0.1", port_of(base)) as stream,
        ):
            await stream.send(raw_head(sign(body, SECRET), len(body)) + body[:20])
            started = anyio.current_time()
            reply = await read_to_close(stream)
            elapsed = anyio.current_time() - started
    assert reply.startswith(b"HTTP/1.1 408")
    assert reply.endswith(b'{"error":"request timeout"}')
    assert 0.2 < elapsed < 1.5
    assert recorder.calls == []
    assert [entry["reason"] for entry in logs if entry["event"] == "webhook.rejected"] == [
        "body_timeout"
    ]


async def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(5):
        async with running(recorder, max_connections=3) as base:
            idle = [await anyio.connect_tcp("127.0.0.1", port_of(base)) for _ in range(3)]
            await anyio.sleep(0.1)  # all three accepted, oldest first
            async with aiohttp.ClientSession() as session:
                status, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
            assert await read_to_close(idle[0]) == b""  # closed to make room
            with anyio.move_on_after(0.2) as still_open:
                await idle[2].receive()
            for stream in idle:
                await stream.aclose()
    assert status == 200
    assert still_open.cancelled_caught


async def test_when_every_connection_is_busy_a_new_one_waits_for_a_slot() -> None:
    release = anyio.Event()
    started: list[str] = []

    async def held(event: AnyEvent, raw: bytes) -> None:
        started.append(event.id)
        await release.wait()

    statuses: list[int] = []
    with anyio.fail_after(10):
        async with (
            running(held, max_connections=2) as base,
            aiohttp.ClientSession() as session,
        ):

            async def deliver(event_id: str) -> None:
                body = message_body(event_id)
                statuses.append(
                    (await post(session, base + "/webhook", body, sign(body, SECRET)))[0]
                )

            async with anyio.create_task_group() as tg:
                for event_id in ("evt_1", "evt_2", "evt_3"):
                    tg.start_soon(deliver, event_id)
                await anyio.sleep(0.5)
                # Two connections, both busy: the third waits in the kernel's queue.
                assert len(started) == 2
                release.set()
    assert statuses == [200, 200, 200]
    assert sorted(started) == ["evt_1", "evt_2", "evt_3"]


async def test_bodies_being_read_share_max_buffered_bytes() -> None:
    # Well-formed, fresh headers pass the early check, so these bodies are read; together
    # they may not pass max_buffered_bytes.
    recorder = Recorder()
    size = 60_000
    headers = {**sign(b"", SECRET), "X-Inkbox-Signature": "sha256=" + "0" * 64}
    with anyio.fail_after(5), structlog.testing.capture_logs() as logs:
        async with running(recorder, max_body_size=65_536, max_buffered_bytes=65_536) as base:
            first = await anyio.connect_tcp("127.0.0.1", port_of(base))
            await first.send(raw_head(headers, size) + b"x" * 40_000)  # and stalls
            await anyio.sleep(0.2)
            async with await anyio.connect_tcp("127.0.0.1", port_of(base)) as second:
                await second.send(raw_head(headers, size) + b"x" * 40_000)
                refused = await read_to_close(second)
            await first.aclose()  # gives its bytes back
            await anyio.sleep(0.1)
            body = message_body()
            async with aiohttp.ClientSession() as session:
                status, _ = await post(session, base + "/webhook", body, sign(body, SECRET))
    assert refused.startswith(b"HTTP/1.1 503")
    assert [entry["reason"] for entry in logs if entry["event"] == "webhook.rejected"] == [
        "buffer_full"
    ]
    assert status == 200


async def test_a_client_leaving_mid_body_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    body = message_body()
    with anyio.fail_after(5), structlog.testing.capture_logs() as logs:
        async with (
            running(recorder) as base,
            await anyio.connect_tcp("127.0.0.1", port_of(base)) as stream,
        ):
            await stream.send(raw_head(sign(body, SECRET), len(body)) + body[:20])
            await anyio.sleep(0.1)
            await anyio.sleep(0.2)
    assert recorder.calls == []
    assert [entry for entry in logs if entry["log_level"] in ("warning", "error")] == []
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


async def test_the_limits_are_checked_when_the_server_is_built() -> None:
    recorder = Recorder()
    with pytest.raises(SetupError, match="body_timeout"):
        create_app(receive=recorder, secrets=[SECRET], body_timeout=0)
    with pytest.raises(SetupError, match="max_buffered_bytes"):
        create_app(receive=recorder, secrets=[SECRET], max_buffered_bytes=1000)
    app = create_app(receive=recorder, secrets=[SECRET])
    with pytest.raises(SetupError, match="header_timeout"):
        await serve_app(app, port=0, header_timeout=-1)
    with pytest.raises(SetupError, match="max_connections"):
        await serve_app(app, port=0, max_connections=0)


def test_the_connection_cap_leaves_descriptors_free_under_the_open_files_limit() -> None:
    assert connection_cap(1024, 1024) == 1024 - FD_RESERVE
    assert connection_cap(1024, 1_048_576) == 1024
    assert connection_cap(1024, None) == 1024
    assert connection_cap(1024, 100) == 50  # a tiny limit: half of it


async def test_the_log_throttle_turns_a_storm_into_one_line_per_interval() -> None:
    throttle = LogThrottle(interval=0.2)
    with structlog.testing.capture_logs() as logs:
        for _ in range(1000):
            throttle.warning("server.accept_failed", error="Too many open files")
        at_once = list(logs)
        await anyio.sleep(0.3)
        throttle.warning("server.slow_clients_closed", count=7)
        throttle.close()
    assert at_once == [
        {
            "event": "server.accept_failed",
            "count": 1,
            "error": "Too many open files",
            "log_level": "warning",
        }
    ]
    assert [(entry["event"], entry["count"]) for entry in logs] == [
        ("server.accept_failed", 1),
        ("server.accept_failed", 999),
        ("server.slow_clients_closed", 7),
    ]
