"""The seam under the client: one method that sends a request and returns the raw answer.

``AiohttpTransport`` is the default and the only one real code needs; the simulator is just
another base URL. ``MockTransport`` exists for the faults nothing real can produce on demand
(a reset in the middle of a response, an undecodable body), and for nothing else.
"""

from __future__ import annotations

import inspect
import io
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from imbot.errors import ConnectError, SetupError, TransportError

__all__ = [
    "AiohttpTransport",
    "MockTransport",
    "Request",
    "Response",
    "Transport",
]


_INLINE_BODY_LIMIT = 1024 * 1024
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, fully built: the transport adds nothing but connection handling.

    Attributes:
        method: the HTTP method, upper case.
        url: the absolute URL, query string already encoded.
        headers: the request headers.
        body: the request body, or ``None``.
        timeout: the total time allowed for the exchange, in seconds; ``None`` for no limit.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float | None = None

    def __repr__(self) -> str:
        # A request turns up in tracebacks and debuggers: never show its key or its body
        # (the message text), only enough to tell requests apart.
        headers = {
            name: "***" if name.lower() in _SECRET_HEADERS else value
            for name, value in self.headers.items()
        }
        body = None if self.body is None else f"<{len(self.body)} bytes>"
        return (
            f"Request(method={self.method!r}, url={self.url!r}, headers={headers!r}, "
            f"body={body}, timeout={self.timeout!r})"
        )


@dataclass(frozen=True, slots=True)
class Response:
    """The raw answer to a request.

    Attributes:
        status: the HTTP status code.
        headers: the response headers; lookups ignore case.
        body: the whole response body.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        # Header names are case-insensitive on the wire; make lookups so for any transport.
        if not isinstance(self.headers, CIMultiDict | CIMultiDictProxy):
            object.__setattr__(self, "headers", CIMultiDict(self.headers))


class Transport(Protocol):
    """Anything that can send a ``Request`` and return its ``Response``.

    Implementations raise ``imbot.errors.TransportError`` when no usable answer arrives,
    and ``imbot.errors.ConnectError`` when nothing could be sent at all.
    """

    async def send(self, request: Request) -> Response:
        """Send one request and return the answer, whatever its status."""
        ...


class AiohttpTransport:
    """The default transport: one shared ``aiohttp.ClientSession`` with a keep-alive pool.

    The session is created on first use and closed by ``aclose()`` (or ``async with``).
    A closed transport cannot be reopened.

    Example:
        >>> async with AiohttpTransport(limit=50) as transport:
        ...     client = InkboxClient(transport=transport)

    Args:
        limit: the most connections open at once, over all hosts.
        keepalive_timeout: seconds an idle connection is kept for reuse.
        ssl_context: a custom TLS context (for a private CA); the system default otherwise.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        keepalive_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = limit
        self._keepalive_timeout = keepalive_timeout
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        # Per-request constants, built once: every send would otherwise build a
        # ClientTimeout and parse its URL again (the client uses a handful of each).
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise SetupError("the transport is closed; create a new client to send again")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=self._keepalive_timeout, ssl=self._ssl
            )
            # Cookies are not part of the API; a shared jar would only leak state between keys.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False
            )
        return self._session

    async def send(self, request: Request) -> Response:
        """Send one request over the shared session.

        Args:
            request: the request to send.

        Returns:
            The status, headers and body, whatever the status.

        Raises:
            ConnectError: the connection could not be opened; nothing was sent.
            TransportError: the exchange failed or timed out after the request was sent.
            SetupError: the transport was closed.
        """
        session = self._open()
        timeout = self._timeouts.get(request.timeout)
        if timeout is None:
            if len(self._timeouts) >= _CACHE_SIZE:
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(total=request.timeout)
            self._timeouts[request.timeout] = timeout
        url = self._urls.get(request.url)
        if url is None:
            if len(self._urls) >= _CACHE_SIZE:
                self._urls.clear()  # URLs with ids or query strings vary: stay bounded
            url = self._urls[request.url] = URL(request.url, encoded=True)
        data: bytes | io.BytesIO | None = request.body
        if request.body is not None and len(request.body) > _INLINE_BODY_LIMIT:
            # aiohttp writes a large bytes body in one go; a stream lets it go in chunks.
            data = io.BytesIO(request.body)
        try:
            async with session.request(
                request.method,
                url,
                headers=request.headers,
                data=data,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return Response(resp.status, resp.headers, body)
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"{request.method} {request.url}: cannot connect: {exc}") from exc
        except TimeoutError as exc:
            raise TransportError(
                f"{request.method} {request.url}: no answer within {request.timeout} s"
            ) from exc
        except aiohttp.ClientResponseError as exc:
            # Its repr and args hold the request's headers, the API key among them: keep
            # neither, not even as the cause (raised outside the handler, so no context).
            failed = TransportError(
                f"{request.method} {request.url}: {type(exc).__name__}: {exc.status}, {exc.message}"
            )
        except aiohttp.ClientError as exc:
            raise TransportError(f"{request.method} {request.url}: {exc!r}") from exc
        raise failed

    async def aclose(self) -> None:
        """Close the session and its pooled connections; later sends raise ``SetupError``."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        """Return the transport; the session opens on the first request."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the transport."""
        await self.aclose()


Handler = Callable[[Request], Response | Awaitable[Response]]
"""A function (plain or async) that answers a request; it may raise ``TransportError``."""


class MockTransport:
    """A transport that answers every request with a handler, for faults nothing real makes.

    Prefer a real server on ``127.0.0.1`` (or the simulator) for everything else.

    Example:
        >>> def reset(request: Request) -> Response:
        ...     raise TransportError("connection reset by peer")
        >>> client = InkboxClient(api_key="ApiKey_x", transport=MockTransport(reset))

    Args:
        handler: called with each request; returns the response or raises.

    Attributes:
        requests: every request received, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        """Record the request and return the handler's answer."""
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result
