"""A scripted HTTP server (real aiohttp, 127.0.0.1, free port), kept only for faults.

Why it exists: the client and transport tests run normal answers against the real simulator
(``imbot_simulator`` from ``imbot.testing``), but a real server cannot be made to fail on
demand. This one can, so it serves exactly the conditions nothing real produces when asked:

- a ``5xx`` or ``429`` and then a ``2xx``, with or without ``Retry-After`` (retries, backoff and
  one ``Idempotency-Key`` across attempts), and ``409 idempotency_in_progress``;
- every documented error shape: structured and plain-text details, an HTML page from a proxy,
  an empty body, a ``413`` the client's own size check would never let through, statuses the
  API does not document;
- a ``2xx`` whose body is cut off or has the wrong shape, an answer that never comes (timeouts),
  a redirect, an unusual status with a custom header;
- the server's view of the exchange: the connection each request came on (keep-alive) and the
  bytes that arrived (streamed bodies), which a client-side recording cannot show.

Anything the simulator can answer belongs in a simulator test, not here. Each route answers
with a queue of scripted replies (the last one repeats) and every request is recorded with its
method, path, query, headers, body and arrival time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web
from multidict import CIMultiDictProxy, MultiDictProxy


@dataclass
class Recorded:
    """One request the stub received."""

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    at: float
    peer: Any

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Dynamic = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


class InkboxStub:
    """The scripted server. Use ``reply`` to script a route, then read ``requests``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], list[Reply | Dynamic]] = {}
        self._runner: web.AppRunner | None = None
        self._stopping: anyio.Event | None = None
        self.url = ""

    def reply(self, method: str, path: str, *replies: Reply | Dynamic) -> None:
        """Script ``method path`` (path without the query) to answer with ``replies``."""
        self._routes[(method, path)] = list(replies)

    def hang(self) -> Dynamic:
        """A reply that never comes (until the stub stops): for client timeouts."""

        async def wait(request: web.Request, body: bytes) -> web.StreamResponse:
            assert self._stopping is not None
            await self._stopping.wait()
            return web.Response(status=503)

        return wait

    def calls(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests to one route."""
        return [r for r in self.requests if r.method == method and r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        # The raw (still percent-encoded) path, to check how the client quoted ids.
        path = request.raw_path.split("?", 1)[0]
        self.requests.append(
            Recorded(
                request.method,
                path,
                request.query,
                request.headers,
                body,
                time.monotonic(),
                request.transport.get_extra_info("peername") if request.transport else None,
            )
        )
        queue = self._routes.get((request.method, path))
        if not queue:
            return web.json_response({"detail": "Not Found"}, status=404)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if not isinstance(reply, Reply):
            return await reply(request, body)
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=reply.headers)
        if reply.json is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.json, status=reply.status, headers=reply.headers)

    async def start(self) -> None:
        self._stopping = anyio.Event()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
