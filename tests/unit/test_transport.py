"""Transports: the aiohttp default against a real server, and MockTransport for faults."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web
from support.inkbox_stub import InkboxStub, Reply

from imbot.client.transport import AiohttpTransport, MockTransport, Request, Response, Transport
from imbot.errors import ConnectError, SetupError, TransportError


@pytest.fixture
async def server() -> AsyncIterator[InkboxStub]:
    stub = InkboxStub()
    await stub.start()
    yield stub
    await stub.stop()


async def test_sends_method_headers_and_body(server: InkboxStub) -> None:
    server.reply("PUT", "/echo", Reply(207, {"ok": True}, {"X-Custom": "yes"}))
    request = Request(
        "PUT",
        server.url + "/echo?a=%2B1&b=x%20y",
        {"X-API-Key": "k", "Content-Type": "application/octet-stream"},
        b"\x00\x01payload",
        timeout=5,
    )
    with anyio.fail_after(5):
        async with AiohttpTransport() as transport:
            response = await transport.send(request)
    assert response.status == 207
    assert response.headers["x-custom"] == "yes"
    assert response.headers["X-CUSTOM"] == "yes"
    assert response.body == b'{"ok": true}'
    (seen,) = server.requests
    assert seen.method == "PUT"
    assert seen.body == b"\x00\x01payload"
    assert seen.headers["X-API-Key"] == "k"
    # The query string goes out exactly as encoded: no double encoding of %2B.
    assert seen.query["a"] == "+1"
    assert seen.query["b"] == "x y"


async def test_error_statuses_are_returned_not_raised(server: InkboxStub) -> None:
    server.reply("GET", "/x", Reply(503, {"detail": "down"}))
    with anyio.fail_after(5):
        async with AiohttpTransport() as transport:
            response = await transport.send(Request("GET", server.url + "/x"))
    assert response.status == 503


async def test_redirects_are_not_followed(server: InkboxStub) -> None:
    server.reply("GET", "/old", Reply(307, None, {"Location": "/new"}))
    with anyio.fail_after(5):
        async with AiohttpTransport() as transport:
            response = await transport.send(Request("GET", server.url + "/old"))
    assert response.status == 307
    assert [r.path for r in server.requests] == ["/old"]


async def test_one_pooled_connection_is_reused(server: InkboxStub) -> None:
    server.reply("GET", "/x", Reply(200, {}))
    with anyio.fail_after(5):
        async with AiohttpTransport(limit=4) as transport:
            for _ in range(5):
                await transport.send(Request("GET", server.url + "/x"))
    assert len(server.requests) == 5
    assert len({r.peer for r in server.requests}) == 1


async def test_large_bodies_are_streamed(server: InkboxStub) -> None:
    server.reply("POST", "/big", Reply(201, {}))
    body = bytes(range(256)) * 8192  # 2 MiB: above aiohttp's inline-body warning
    with anyio.fail_after(10):
        async with AiohttpTransport() as transport:
            response = await transport.send(Request("POST", server.url + "/big", {}, body))
    assert response.status == 201
    assert server.requests[0].body == body


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with anyio.fail_after(5):
        async with AiohttpTransport() as transport:
            with pytest.raises(ConnectError, match="cannot connect"):
                await transport.send(Request("GET", f"http://127.0.0.1:{port}/"))


async def test_timeout_is_a_transport_error(server: InkboxStub) -> None:
    server.reply("GET", "/slow", server.hang())
    with anyio.fail_after(5):
        async with AiohttpTransport() as transport:
            with pytest.raises(TransportError, match=r"no answer within 0\.1 s") as info:
                await transport.send(Request("GET", server.url + "/slow", timeout=0.1))
    assert not isinstance(info.value, ConnectError)


async def test_a_dropped_connection_is_a_transport_error() -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_get("/", drop)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        with anyio.fail_after(5):
            async with AiohttpTransport() as transport:
                with pytest.raises(TransportError) as info:
                    await transport.send(Request("GET", f"http://{host}:{port}/"))
        assert not isinstance(info.value, ConnectError)
    finally:
        await runner.cleanup()


async def test_closed_transport_refuses(server: InkboxStub) -> None:
    transport = AiohttpTransport()
    await transport.aclose()
    await transport.aclose()
    with pytest.raises(SetupError, match="closed"):
        await transport.send(Request("GET", server.url + "/x"))
    assert server.requests == []


async def test_transports_satisfy_the_protocol() -> None:
    def answer(request: Request) -> Response:
        return Response(200)

    transports: list[Transport] = [AiohttpTransport(), MockTransport(answer)]
    assert all(callable(t.send) for t in transports)
    first = transports[0]
    assert isinstance(first, AiohttpTransport)
    await first.aclose()


async def test_mock_transport_with_plain_and_async_handlers() -> None:
    def plain(request: Request) -> Response:
        return Response(201, {"Retry-After": "1"}, request.body or b"")

    async def later(request: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        return Response(204)

    mock = MockTransport(plain)
    response = await mock.send(Request("POST", "http://x/y", {}, b"abc"))
    assert (response.status, response.body) == (201, b"abc")
    assert response.headers["retry-after"] == "1"
    assert [r.url for r in mock.requests] == ["http://x/y"]
    assert (await MockTransport(later).send(Request("GET", "http://x"))).status == 204


async def test_mock_transport_can_raise_transport_faults() -> None:
    def reset(request: Request) -> Response:
        raise TransportError("connection reset by peer")

    with pytest.raises(TransportError, match="reset"):
        await MockTransport(reset).send(Request("GET", "http://x"))


def test_response_headers_ignore_case() -> None:
    response = Response(200, {"Content-Type": "application/json"})
    assert response.headers["content-type"] == "application/json"
    assert Response(200).headers == {}
    assert Response(200).body == b""
