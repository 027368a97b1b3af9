"""The webhook server: the only imbot module that knows ``aiohttp.web``.

One POST goes through, in order:

```
size limit ──► signature + timestamp ──► parse ──► receive(event, raw) ──► 200 {"ok": true}
   413             401 (no detail)         400        (dedupe + enqueue)
                                    unknown type: 200, logged
```

``receive`` only records and enqueues the event (the bot's ``feed``); handlers run later on
the dispatcher, so the 200 never waits for them. The success path allocates little and logs
nothing: it costs within a few percent of a hand-written aiohttp handler that checks an HMAC
and parses JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.abc
from aiohttp import web
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

from imbot.errors import InvalidSignature, MalformedEvent, SetupError
from imbot.events import AnyEvent, UnknownEvent, parse_event
from imbot.log import get_logger
from imbot.net import cannot_listen
from imbot.webhooks import verify

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app", "serve_app"]

_log = get_logger("imbot.bot.server")

DEFAULT_MAX_BODY_SIZE = 1_048_576
"""Largest webhook body accepted, in bytes (1 MiB; real events are a few KiB)."""

Receive = Callable[[AnyEvent, bytes], Awaitable[object]]
Secrets = Callable[[], Sequence[str]] | Sequence[str]

# Built once: every response on the hot path reuses these bytes and headers.
_JSON = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
_OK = b'{"ok":true}'
_IGNORED = b'{"ok":true,"ignored":true}'
_TOO_LARGE = b'{"error":"body too large"}'
_UNAUTHORIZED = b'{"error":"invalid signature"}'
_MALFORMED = b'{"error":"malformed event"}'
_UNAVAILABLE = b'{"error":"unavailable"}'


def _response(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, headers=_JSON)


async def _read_capped(stream: StreamReader, limit: int) -> bytes | None:
    """Read the whole body, or return ``None`` as soon as it passes ``limit`` bytes."""
    chunk = await stream.readany()
    if stream.is_eof():
        # The common case: a small body arrives in one piece.
        return chunk if len(chunk) <= limit else None
    parts = [chunk]
    size = len(chunk)
    # Chunked (or compressed) bodies have no trustworthy length: count while reading.
    while size <= limit:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
    return None


def create_app(
    *,
    receive: Receive,
    secrets: Secrets,
    path: str = "/webhook",
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    tolerance: float = 300,
    health: Callable[[], Mapping[str, Any]] | None = None,
) -> web.Application:
    """Build the aiohttp application that receives Inkbox webhooks.

    Example:
        >>> app = create_app(receive=bot.feed, secrets=["whsec_..."])
        >>> async with anyio.create_task_group() as tg:
        ...     port = await tg.start(serve_app, app)

    Args:
        receive: awaited with each verified, parsed event of a known type and its raw body;
            it should only record and enqueue (it delays the 200). If it raises, the answer
            is 503 so that Inkbox delivers the event again later.
        secrets: the signing keys, or a callable returning them (read on every request, for
            key rotation without a restart). Any one of them may match.
        path: the webhook route.
        max_body_size: larger bodies are refused with 413 before they are read in full.
        tolerance: seconds the ``X-Inkbox-Timestamp`` may differ from now, either way.
        health: called on ``GET /healthz``; its mapping is merged into the JSON answer.

    Returns:
        The application, with ``POST {path}`` and ``GET /healthz``.

    Raises:
        SetupError: ``secrets`` is an empty sequence.
    """
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

    async def webhook(request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > max_body_size:
            return _reject(413, _TOO_LARGE, "body_too_large", request)
        body = await _read_capped(request.content, max_body_size)
        if body is None:
            return _reject(413, _TOO_LARGE, "body_too_large", request)
        try:
            verify(body, request.headers, get_secrets(), tolerance=tolerance)
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
        except Exception:
            _log.exception("webhook.receive_failed", event_id=event.id)
            return _response(503, _UNAVAILABLE)
        return _response(200, _OK)

    async def healthz(request: web.Request) -> web.Response:
        payload: dict[str, Any] = {"status": "ok"}
        if health is not None:
            payload.update(health())
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
    return _response(status, body)


async def serve_app(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = False,
    shutdown_timeout: float = 5.0,
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
        task_status: receives the bound port once the server listens.

    Raises:
        OSError: the address cannot be bound (for example the port is in use); the message
            names the address.
    """
    # Signals belong to Bot.run() / the CLI, not to a library function.
    options: dict[str, Any] = {} if access_log else {"access_log": None}
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout, **options)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise cannot_listen(host, port, exc) from exc
        bound = int(runner.addresses[0][1])
        _log.info("server.listening", host=host, port=bound)
        task_status.started(bound)
        await anyio.sleep_forever()
    finally:
        # Shielded: this runs while the task is being cancelled and must still close sockets.
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
