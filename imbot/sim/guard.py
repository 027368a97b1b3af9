"""Who may talk to the simulator: loopback ``Host`` names only, and no cross-origin writes.

The phone API (``/sim/v1``) needs no key: it stands for the humans' phones. Two kinds of web
page could still reach it from the browser of whoever runs the simulator:

- a page on another origin can send a "simple" request (``text/plain`` or multipart body,
  no custom header) without a CORS preflight: the browser delivers it and only hides the
  answer. So a state-changing request whose ``Origin`` (or ``Sec-Fetch-Site``) says it
  comes from another origin is refused with ``403``.
- a DNS-rebinding page (its own host name, re-pointed at 127.0.0.1) is same-origin with
  itself, so it may read the answers; but its requests carry its own name in ``Host``.
  So only loopback names, the bound interface and the names configured in
  ``SimConfig.allowed_hosts`` are served; any other ``Host`` gets ``421``.

Clients that are not browsers (the official SDK, imbot's client, curl) send no ``Origin``
and use the address they were given, so they pass unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from imbot.sim.responses import ApiError, coded

__all__ = ["allowed_name", "guard_middleware", "host_name", "normalise_host"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Methods a browser may send cross-origin that change nothing here.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# "none" is a request the user started (typed URL, bookmark), not a page on some origin.
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:/@\[\]]+)(?::([0-9]{1,5}))?")


def normalise_host(name: str) -> str:
    """A host name as compared: lower case, no IPv6 brackets, no trailing dot."""
    return name.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def host_name(header: str) -> tuple[str, int | None] | None:
    """Split a ``Host`` header into ``(name, port)``; ``None`` when it is malformed."""
    match = _HOST_HEADER.fullmatch(header.strip())
    if match is None:
        return None
    port = match.group(2)
    return normalise_host(match.group(1)), int(port) if port else None


def allowed_name(entry: str) -> str | None:
    """An ``allowed_hosts`` entry as compared (a port is ignored); ``None`` if malformed."""
    if entry.strip() == "*":
        return "*"
    bare = normalise_host(entry)
    if _is_ip(bare):
        return _canonical(bare)
    parsed = host_name(entry)  # a name, perhaps with a port, or a bracketed IPv6 with one
    return None if parsed is None else _canonical(parsed[0])


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _canonical(name: str) -> str:
    # One spelling per IP address ("0:0::1" and "::1" are the same host).
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _misdirected(host: str) -> ApiError:
    return ApiError(
        421,
        coded(
            "host_not_allowed",
            f"this simulator does not answer to the host name {host!r}; it serves loopback "
            "names (127.0.0.1, localhost, [::1]) and the names given to allowed_hosts "
            "(imbot sim --allow-host)",
        ),
    )


def _cross_origin(origin: str) -> ApiError:
    return ApiError(
        403,
        coded(
            "cross_origin_refused",
            f"a page on another origin ({origin}) may not change the simulator's state; "
            "use the chat page, or a client that is not a browser",
        ),
    )


class _Guard:
    def __init__(self, bind_host: str, allowed_hosts: Iterable[str]) -> None:
        allowed = {name for name in map(allowed_name, allowed_hosts) if name is not None}
        self._any_host = "*" in allowed
        bound = _canonical(normalise_host(bind_host))
        if bound not in _WILDCARD_BINDS:
            # Whoever binds to an address means to reach the simulator by it.
            allowed.add(bound)
        self._allowed = frozenset(allowed - {"*"})

    def host_allowed(self, name: str) -> bool:
        return self._any_host or _canonical(name) in self._allowed or _is_loopback(name)

    def check_host(self, request: web.Request) -> None:
        header = request.headers.get("Host")
        if header is None:
            # Browsers always send Host; a client without one is not a rebinding page.
            return
        parsed = host_name(header)
        if parsed is None or not self.host_allowed(parsed[0]):
            raise _misdirected(header)

    def check_origin(self, request: web.Request) -> None:
        if request.method in _SAFE_METHODS:
            return
        fetch_site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if fetch_site is not None and fetch_site.lower() not in _SAME_SITE_FETCH:
            raise _cross_origin(origin or fetch_site)
        if origin is not None and not self._same_origin(origin, request):
            raise _cross_origin(origin)

    @staticmethod
    def _same_origin(origin: str, request: web.Request) -> bool:
        # "null" (a sandboxed frame, a file:// page) is never this server.
        try:
            parts = urlsplit(origin.strip())
            origin_port = parts.port
        except ValueError:
            return False
        if parts.scheme.lower() != request.scheme or parts.hostname is None:
            return False
        header = request.headers.get("Host")
        own = host_name(header) if header is not None else None
        if own is None:
            return False
        default = 443 if request.scheme == "https" else 80
        return (normalise_host(parts.hostname), origin_port or default) == (
            own[0],
            own[1] or default,
        )


def guard_middleware(bind_host: str, allowed_hosts: Iterable[str] = ()) -> Middleware:
    """Middleware refusing foreign ``Host`` names (``421``) and cross-origin writes (``403``).

    Args:
        bind_host: the interface the simulator listens on; a specific one is allowed too.
        allowed_hosts: further host names to serve (``"*"`` serves any name; the
            cross-origin check stays).
    """
    guard = _Guard(bind_host, allowed_hosts)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        guard.check_host(request)
        guard.check_origin(request)
        return await handler(request)

    return middleware
