"""The webhook server: the only imbot module that knows ``aiohttp.web``.

One POST goes through, in order:

```
signature headers ──► size limit ──► body (timed, ──► HMAC ──► parse ──► receive ──► 200
(present, ASCII,        413          budgeted)        401       400     (dedupe +    {"ok":
 timestamp in window)               408 / 503                           enqueue)      true}
   401 (no detail)                                            unknown type: 200, logged
```

The headers are judged before a byte of the body is read, so a request that cannot be
signed costs no buffering; the body must arrive within ``body_timeout`` and all bodies
being read share ``max_buffered_bytes``. ``serve_app`` accepts connections through
``imbot.bot.listener.Listener``: at most ``max_connections`` (below the open-files limit), and
a connection that sends no request headers within ``header_timeout`` is closed.

``receive`` only records and enqueues the event (the bot's ``feed``); handlers run later on
the dispatcher, so the 200 never waits for them. The success path allocates little and logs
nothing: it costs within a few percent of a hand-written aiohttp handler that checks an HMAC
and parses JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.abc
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from imbot.bot.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    ByteBudget,
    LogThrottle,
    check_limits,
    connection_cap,
    open_files_limit,
    read_capped,
)
from imbot.bot.listener import Connection, Listener
from imbot.errors import InvalidSignature, MalformedEvent, SetupError, StoreUnavailable
from imbot.events import AnyEvent, UnknownEvent, parse_event
from imbot.log import get_logger
from imbot.net import bind_listener
from imbot.webhooks import REQUEST_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app", "serve_app"]

_log = get_logger("imbot.bot.server")

DEFAULT_MAX_BODY_SIZE = 1_048_576
"""Largest webhook body accepted, in bytes (1 MiB; real events are a few KiB)."""

Receive = Callable[[AnyEvent, bytes], Awaitable[object]]
Secrets = Callable[[], Sequence[str]] | Sequence[str]

# Built once: every response on the hot path reuses these bytes and headers.
_JSON = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
# The shared store is out of reach: Inkbox is asked to deliver again in a moment.
_RETRY_LATER = CIMultiDictProxy(
    CIMultiDict({"Content-Type": "application/json", "Retry-After": "2"})
)
_OK = b'{"ok":true}'
_IGNORED = b'{"ok":true,"ignored":true}'
_TOO_LARGE = b'{"error":"body too large"}'
_UNAUTHORIZED = b'{"error":"invalid signature"}'
_MALFORMED = b'{"error":"malformed event"}'
_UNAVAILABLE = b'{"error":"unavailable"}'
_TIMEOUT = b'{"error":"request timeout"}'

_INKBOX_PREFIX = "x-inkbox-"
_SIGNATURE_PREFIX = "sha256="
_SIGNATURE_LENGTH = len(_SIGNATURE_PREFIX) + 64  # sha256= and 64 hex digits
_MAX_REQUEST_ID = 256
_MAX_TIMESTAMP_DIGITS = 12


def _response(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, headers=_JSON)


def _header_problem(headers: CIMultiDictProxy[str], tolerance: float) -> str | None:
    """Why the signature headers cannot be right, judged before the body; ``None`` if they may.

    The reasons are those of ``verify`` (which checks them again with the HMAC), plus
    ``malformed_header``: an ``X-Inkbox-*`` value that is not ASCII (a raw 0xff byte
    arrives as a lone surrogate), or a signature or request id of the wrong shape.
    """
    for name, value in headers.items():
        # The value first: almost every one is ASCII, and that test is the cheaper.
        if not value.isascii() and name[:9].lower() == _INKBOX_PREFIX:
            return "malformed_header"
    signature = headers.get(SIGNATURE_HEADER)
    request_id = headers.get(REQUEST_ID_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not request_id or not timestamp:
        return "missing_header"
    if not (signature.isprintable() and request_id.isprintable()):
        return "malformed_header"
    if not timestamp.isdigit() or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return "bad_timestamp"
    if abs(time.time() - int(timestamp)) > tolerance:
        return "stale_timestamp"
    if (
        len(signature) != _SIGNATURE_LENGTH
        or not signature.startswith(_SIGNATURE_PREFIX)
        or len(request_id) > _MAX_REQUEST_ID
    ):
        return "malformed_header"
    return None


def create_app(
    *,
    receive: Receive,
    secrets: Secrets,
    path: str = "/webhook",
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    tolerance: float = 300,
    health: Callable[[], Mapping[str, Any]] | None = None,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_buffered_bytes: int | None = None,
) -> web.Application:
    """Build the aiohttp application that receives Inkbox webhooks.

    Example:
        >>> app = create_app(receive=bot.feed, secrets=["whsec_..."])
        >>> async with anyio.create_task_group() as tg:
        ...     port = await tg.start(serve_app, app)

    Args:
        receive: awaited with each verified, parsed event of a known type and its raw body;
            it should only record and enqueue (it delays the 200). If it raises, the answer
            is 503 so that Inkbox delivers the event again later (with ``Retry-After`` when
            the shared store is unreachable: ``StoreUnavailable``).
        secrets: the signing keys, or a callable returning them (read on every request, for
            key rotation without a restart). Any one of them may match.
        path: the webhook route.
        max_body_size: larger bodies are refused with 413 before they are read in full.
        tolerance: seconds the ``X-Inkbox-Timestamp`` may differ from now, either way.
        health: called on ``GET /healthz``; its mapping is merged into the JSON answer.
        body_timeout: seconds a request has, once its headers are in, to send its whole
            body; a slower one is answered 408 and its connection closed.
        max_buffered_bytes: bytes of bodies buffered across all requests being read; a
            request that would pass it is answered 503 (Inkbox delivers it again later).
            By default ``DEFAULT_MAX_BUFFERED_BYTES`` (16 MiB), or ``max_body_size`` if
            that is larger.

    Returns:
        The application, with ``POST {path}`` and ``GET /healthz``.

    Raises:
        SetupError: ``secrets`` is an empty sequence, or a limit is out of range (a
            timeout not positive, ``max_buffered_bytes`` below ``max_body_size``).
    """
    if max_buffered_bytes is None:
        max_buffered_bytes = max(DEFAULT_MAX_BUFFERED_BYTES, max_body_size)
    check_limits(
        body_timeout=body_timeout,
        max_body_size=max_body_size,
        max_buffered_bytes=max_buffered_bytes,
    )
    if callable(secrets):
        get_secrets: Callable[[], Sequence[str]] = secrets
    else:
        # A lone string is a Sequence[str] too; iterating it would yield one key per letter.
        fixed = (secrets,) if isinstance(secrets, str) else tuple(s for s in secrets if s)
        if not fixed:
            raise SetupError(
                "create_app needs at least one webhook signing key: pass "
                "secrets=['whsec_...'] (the identity's signing key), or a callable returning them"
            )

        def get_secrets() -> Sequence[str]:
            return fixed

    budget = ByteBudget(max_buffered_bytes)
    outages = LogThrottle()

    async def webhook(request: web.Request) -> web.Response:
        # Headers first: a request that cannot be signed is refused before its body is read.
        problem = _header_problem(request.headers, tolerance)
        if problem is not None:
            return _reject(401, _UNAUTHORIZED, problem, request)
        keys = get_secrets()
        if not keys:
            return _reject(401, _UNAUTHORIZED, "no_secret", request)
        length = request.content_length
        if length is not None and length > max_body_size:
            return _reject(413, _TOO_LARGE, "body_too_large", request)
        try:
            if request.content.is_eof():  # the whole body came with the headers: no timer
                body = await read_capped(request.content, max_body_size, budget)
            else:
                async with asyncio.timeout(body_timeout):
                    body = await read_capped(request.content, max_body_size, budget)
        except TimeoutError:
            return _reject(408, _TIMEOUT, "body_timeout", request)
        except ConnectionError:
            # The client left mid-body: no one will read an answer, and nothing went wrong here.
            return _response(400, _MALFORMED)
        if isinstance(body, int):
            if body == 413:
                return _reject(413, _TOO_LARGE, "body_too_large", request)
            return _reject(503, _UNAVAILABLE, "buffer_full", request)
        try:
            return await deliver(body, request, keys)
        finally:
            budget.give(len(body))

    async def deliver(body: bytes, request: web.Request, keys: Sequence[str]) -> web.Response:
        try:
            verify(body, request.headers, keys, tolerance=tolerance)
        except InvalidSignature as exc:
            # The reason goes to the log only: a prober learns nothing from the answer.
            return _reject(401, _UNAUTHORIZED, exc.reason, request)
        try:
            event = parse_event(body)
        except MalformedEvent as exc:
            return _reject(400, _MALFORMED, "malformed_event", request, detail=str(exc))
        if isinstance(event, UnknownEvent):
            _log.info("webhook.unknown_event", event_type=event.event_type, event_id=event.id)
            return _response(200, _IGNORED)
        try:
            await receive(event, body)
        except StoreUnavailable as exc:
            # The shared store is out of reach: Inkbox delivers again later. One line per
            # interval, however many webhooks meet the outage.
            outages.warning("webhook.store_unavailable", event_id=event.id, error=str(exc))
            return web.Response(status=503, body=_UNAVAILABLE, headers=_RETRY_LATER)
        except Exception:
            _log.exception("webhook.receive_failed", event_id=event.id)
            return _response(503, _UNAVAILABLE)
        return _response(200, _OK)

    async def healthz(request: web.Request) -> web.Response:
        payload: dict[str, Any] = {"status": "ok"}
        if health is not None:
            payload.update(health())
        if payload.get("running") is False:
            # A bot that cannot take events must fail its health check, so that a
            # supervisor or load balancer acts: never 200 with "running": false.
            payload["status"] = "unavailable"
            return web.json_response(payload, status=503)
        return web.json_response(payload)

    app = web.Application(client_max_size=max_body_size)
    app.router.add_post(path, webhook)
    app.router.add_get("/healthz", healthz)
    return app


def _reject(
    status: int, body: bytes, reason: str, request: web.Request, *, detail: str | None = None
) -> web.Response:
    log = _log.error if reason == "no_secret" else _log.warning
    log(
        "webhook.rejected",
        status=status,
        reason=reason,
        detail=detail,
        remote=request.remote,
        content_length=request.content_length,
    )
    response = _response(status, body)
    if not request.content.is_eof():
        # Part of the body is unread: the connection ends with this answer (serve_app does
        # not drain the rest), and the client is told so.
        response.force_close()
    return response


def _track_requests(server: web.Server) -> None:
    """Tell each connection's ``Connection`` when a request starts and when it is answered."""
    handle = server.request_handler

    async def tracked(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        conn = transport.get_protocol() if transport is not None else None
        if not isinstance(conn, Connection):
            return await handle(request)
        conn.request_started()
        try:
            return await handle(request)
        finally:
            conn.request_finished()

    server.request_handler = tracked


async def serve_app(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = False,
    shutdown_timeout: float = 5.0,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    reuse_port: bool = False,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve an application until cancelled, then close it cleanly.

    Example:
        >>> async with anyio.create_task_group() as tg:
        ...     port = await tg.start(serve_app, app)  # port=0 picks a free port
        ...     ...
        ...     tg.cancel_scope.cancel()

    Args:
        app: the application from ``create_app``.
        host: the interface to bind; the loopback by default.
        port: the port; 0 picks a free one.
        access_log: log every request through aiohttp's access logger (off: it costs
            throughput, and imbot logs what matters itself).
        shutdown_timeout: seconds open requests get to finish when the server stops.
        header_timeout: seconds a connection has to send a request's headers, from when it
            opens or from its previous answer; then it is closed (this also ends idle
            keep-alive connections).
        max_connections: connections held at once, lowered to leave
            ``imbot.bot.limits.FD_RESERVE`` descriptors free under the open-files limit.
            At the cap, the connection idle the longest is closed for a new one; when all
            are busy, new ones wait in the kernel's queue until one is answered or closes.
        reuse_port: share the port with other processes that bind it the same way
            (``SO_REUSEPORT``, ``imbot run --workers``); the kernel spreads connections.
        task_status: receives the bound port once the server listens.

    Raises:
        OSError: the address cannot be bound (for example the port is in use); the message
            names the address.
        SetupError: ``header_timeout`` is not positive or ``max_connections`` is below 1.
    """
    check_limits(header_timeout=header_timeout, max_connections=max_connections)
    cap = connection_cap(max_connections, open_files_limit())
    # Signals belong to Bot.run() / the CLI, not to a library function. lingering_time=0:
    # a body left unread (a refused request) is not drained for up to 10 s; aiohttp closes
    # the connection once the answer is written.
    options: dict[str, Any] = {} if access_log else {"access_log": None}
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        lingering_time=0,
        **options,
    )
    await runner.setup()
    listener: Listener | None = None
    try:
        assert runner.server is not None
        _track_requests(runner.server)
        sock = bind_listener(host, port, reuse_port=reuse_port)
        listener = Listener(sock, runner.server, max_connections=cap, header_timeout=header_timeout)
        await listener.start()
        bound = int(sock.getsockname()[1])
        _log.info(
            "server.listening",
            host=host,
            port=bound,
            max_connections=cap,
            header_timeout=header_timeout,
        )
        task_status.started(bound)
        await anyio.sleep_forever()
    finally:
        # Shielded: this runs while the task is being cancelled and must still close sockets.
        with anyio.CancelScope(shield=True):
            if listener is not None:
                await listener.aclose()
            await runner.cleanup()
