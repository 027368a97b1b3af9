"""The base every endpoint group shares: settings, headers, URLs, retries, errors, paging.

``_BaseClient`` resolves the settings once, owns the transport, and sends every request
through one loop (``_request``) that retries per ``backoff.RetryPolicy`` and maps error
answers to the typed errors of ``imbot.errors``. The endpoint groups (``messaging``,
``conversations``, ``media``, ``rules``, ``provisioning``) subclass it and add one method per
endpoint; ``InkboxClient`` (in ``client.py``) composes them. The module-level helpers check
arguments before any request and build paths, so every group refuses bad input the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode

import anyio
from pydantic import ValidationError

from imbot._version import __version__
from imbot.client._paging import RowT, walk_by_offset
from imbot.client.backoff import RetryPolicy, parse_retry_after
from imbot.client.error_map import error_for_response
from imbot.client.transport import AiohttpTransport, Request, Response, Transport
from imbot.config import Settings, resolve_settings
from imbot.errors import (
    ConfigError,
    InkboxError,
    InvalidRequest,
    SetupError,
    TransportError,
)
from imbot.log import get_logger, register_secret

T = TypeVar("T")

MAX_PAGE_SIZE = 200
"""The largest ``limit`` a list endpoint accepts."""

QueryValue = str | int | bool | date | None
"""A query parameter's value; ``None`` leaves the parameter out."""

DateFilter = date | str | None
"""A date filter: a ``datetime`` (exact instant), a ``date`` (whole day), or ISO text."""

# Named after the composed client, the module users know, so log filters need no update.
_log = get_logger("imbot.client.client")


def ignore_body(_: bytes) -> None:
    """Parse nothing: for endpoints whose answer carries no data the client uses."""


def segment(value: object) -> str:
    """Quote one path segment, so an id or handle can never change the path.

    Args:
        value: the id (or any value) to put in the path; ``/`` and ``?`` are escaped too.

    Returns:
        The percent-encoded text.
    """
    return quote(str(value), safe="")


def handle_segment(handle: str) -> str:
    """Quote a handle for a path, dropping the optional leading ``@``.

    Args:
        handle: the identity's handle, with or without its ``@``.

    Returns:
        The percent-encoded handle.
    """
    return segment(handle.removeprefix("@"))


def invalid(what: str, exc: ValidationError) -> InvalidRequest:
    """Turn a pydantic validation error on a request body into ``InvalidRequest``.

    Args:
        what: what was being built, for the message (``"message"``, ``"reaction"``).
        exc: the validation error.

    Returns:
        The error to raise: its message lists every field, its ``errors`` one
        ``{"loc", "msg"}`` per problem.
    """
    errors = [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    listed = "; ".join(f"{e['loc']}: {e['msg']}" if e["loc"] else e["msg"] for e in errors)
    return InvalidRequest(f"invalid {what}: {listed}", errors=errors)


E = TypeVar("E", bound=Enum)


def enum_value(kind: type[E], value: E | str, name: str) -> str:
    """Check a request value against an enum, before any request; return its wire text.

    Args:
        kind: the enum the value must belong to.
        value: a member, or its wire text.
        name: the argument's name, for the message.

    Raises:
        InvalidRequest: the value is not one of the enum's; the message lists them.
    """
    try:
        return str(kind(value).value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise InvalidRequest(f"{name} must be one of {allowed}, not {value!r}") from None


def check_page(limit: int, offset: int = 0) -> None:
    """Refuse a page size outside 1–200 or a negative offset, before any request.

    Raises:
        InvalidRequest: ``limit`` or ``offset`` is out of range.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
    if offset < 0:
        raise InvalidRequest(f"offset must not be negative, not {offset}")


def check_idempotency_key(key: str) -> str:
    """Refuse an idempotency key the service would reject: 1–255 printable ASCII, not blank.

    Returns:
        The key, unchanged.

    Raises:
        InvalidRequest: the key is blank, too long, or not printable ASCII.
    """
    if not key.strip() or len(key) > 255 or not key.isascii() or not key.isprintable():
        raise InvalidRequest("idempotency_key must be 1 to 255 printable ASCII characters")
    return key


def _query_text(value: str | int | bool | date) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    return str(value)


def _is_json_error(exc: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in exc.errors(include_url=False))


def _shape_error(request: Request, exc: ValidationError, key: str | None) -> TransportError:
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"])
    return TransportError(
        f"{request.method} {request.url}: the answer does not have the expected shape "
        f"({loc or 'top level'}: {first['msg']})",
        idempotency_key=key,
    )


def _decode_error_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        # A proxy's HTML error page: keep a readable head of it as the message.
        return body[:500].decode("utf-8", "replace").strip() or None


class _BaseClient:
    """Settings, the transport, and one retrying request method shared by every endpoint.

    The arguments are ``InkboxClient``'s (documented there); secrets are keyword-only so a
    key can never be passed by position by mistake.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_attempts: int = 3,
        max_retry_after: float = 5.0,
        transport: Transport | None = None,
        user_agent: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            settings = resolve_settings(api_key=api_key, base_url=base_url)
        elif api_key is not None or base_url is not None:
            raise ConfigError("give either settings= or api_key= / base_url=, not both")
        self.settings = settings
        register_secret(settings.api_key)  # masked in every log line from now on
        self._api = settings.base_url + "/api/v1"
        self._timeout = timeout
        self._policy = RetryPolicy(max_attempts=max_attempts, max_retry_after=max_retry_after)
        self._owns_transport = transport is None
        self._transport: Transport = transport if transport is not None else AiohttpTransport()
        agent = f"imbot/{__version__}"
        self._headers = {
            "X-API-Key": settings.api_key,
            "Accept": "application/json",
            "User-Agent": f"{user_agent} {agent}" if user_agent else agent,
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._closed = False

    @property
    def base_url(self) -> str:
        """The API origin, e.g. ``https://inkbox.ai`` or ``http://127.0.0.1:8787``."""
        return self.settings.base_url

    async def aclose(self) -> None:
        """Close the client and the transport it created; a transport passed in stays open."""
        self._closed = True
        if self._owns_transport and isinstance(self._transport, AiohttpTransport):
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        """Return the client; the connection pool opens on the first request."""
        if self._closed:
            raise SetupError("this client is closed; create a new InkboxClient")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.aclose()

    def _url(self, path: str, query: Mapping[str, QueryValue] | None) -> str:
        url = self._api + path
        if query:
            pairs = [(k, _query_text(v)) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urlencode(pairs)
        return url

    async def _request(
        self,
        method: str,
        path: str,
        parse: Callable[[bytes], T],
        *,
        query: Mapping[str, QueryValue] | None = None,
        json_body: Mapping[str, Any] | bytes | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = True,
    ) -> T:
        """Send one logical request, retrying per the policy, and parse the 2xx answer.

        Args:
            method: the HTTP method.
            path: the path under ``/api/v1``, segments already quoted.
            parse: turns the 2xx body into the result.
            query: query parameters; ``None`` values are left out.
            json_body: a JSON body, as a mapping or already encoded.
            body: a raw body (with ``content_type``), for multipart uploads.
            content_type: the ``Content-Type`` of ``body``.
            idempotency_key: sent as ``Idempotency-Key`` with ``Prefer: idempotency-replay``,
                the same on every attempt, and attached to any error raised.
            idempotent: whether repeating the request cannot do the work twice.

        Raises:
            InkboxError: the typed error for the final error status.
            TransportError: no usable answer after the allowed attempts.
        """
        if self._closed:
            raise SetupError("this client is closed; create a new InkboxClient")
        headers: Mapping[str, str] = self._headers
        if json_body is not None:
            body = json_body if isinstance(json_body, bytes) else json.dumps(json_body).encode()
            headers = self._json_headers
        if content_type is not None or idempotency_key is not None:
            extra = dict(headers)
            if content_type is not None:
                extra["Content-Type"] = content_type
            if idempotency_key is not None:
                extra["Idempotency-Key"] = idempotency_key
                extra["Prefer"] = "idempotency-replay"
            headers = extra
        request = Request(method, self._url(path, query), headers, body, self._timeout)
        attempt = 0
        while True:
            error: InkboxError | TransportError
            try:
                response = await self._transport.send(request)
            except TransportError as exc:
                exc.idempotency_key = idempotency_key
                error = exc
            else:
                if response.status < 400:
                    try:
                        return parse(response.body)
                    except ValidationError as exc:
                        if not _is_json_error(exc):
                            # Not chained: pydantic's text quotes the answer (message text).
                            raise _shape_error(request, exc, idempotency_key) from None
                        # Cut off mid-body: worth another try when the request is idempotent.
                        error = TransportError(
                            f"{method} {request.url}: the answer is not JSON",
                            idempotency_key=idempotency_key,
                        )
                else:
                    error = self._error(response, idempotency_key)
            delay = self._policy.next_delay(attempt, error, idempotent=idempotent)
            if delay is None:
                raise error
            _log.info(
                "inkbox.retry",
                method=method,
                path=path,
                attempt=attempt + 1,
                delay=round(delay, 3),
                error=str(error),
            )
            await anyio.sleep(delay)
            attempt += 1

    @staticmethod
    def _error(response: Response, idempotency_key: str | None) -> InkboxError:
        return error_for_response(
            response.status,
            _decode_error_body(response.body),
            idempotency_key=idempotency_key,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    @staticmethod
    def _pages(
        fetch: Callable[[int, int], Awaitable[list[RowT]]], page_size: int
    ) -> AsyncIterator[RowT]:
        """Walk every page of a list endpoint; ``fetch(limit, offset)`` gets one page.

        The page size is checked here, at the call, not at the first ``__anext__``, so a bad
        ``iter_*`` call fails where it is written. A page shorter than ``page_size`` is the
        last; a row met again (pushed down by rows that arrived meanwhile) is not yielded
        twice (see ``_paging``).
        """
        check_page(page_size)
        return walk_by_offset(fetch, page_size)
