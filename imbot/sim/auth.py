"""API keys: who is calling, and whether the call is theirs to make.

Two scopes, as on Inkbox: the admin key acts for the whole organisation; an
identity-scoped key acts as its identity only and is refused admin-only operations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from imbot.sim.core import Core
from imbot.sim.responses import ApiError

__all__ = ["PRINCIPAL", "KeyRing", "Principal", "auth_middleware", "principal_of", "require_admin"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind an API key.

    Attributes:
        key_id: the key's public id (``ApiKey_<uuid>``).
        identity_id: the identity an identity-scoped key is bound to; ``None`` for admin.
        label: the key's label.
        created_at: Unix seconds the key was created.
    """

    key_id: str
    identity_id: str | None
    label: str | None
    created_at: float

    @property
    def is_admin(self) -> bool:
        """Whether this is the organisation-wide admin key."""
        return self.identity_id is None


PRINCIPAL = web.RequestKey("principal", Principal)


class KeyRing:
    """Every valid key, held in memory so a request costs one dict lookup.

    Args:
        core: the simulator's shared state (keys are loaded from its store).
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._keys: dict[str, Principal] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read the keys from the store (after minting or revoking)."""
        self._keys = {
            row["key"]: Principal(
                row["key_id"], row["identity_id"], row["label"], row["created_ts"]
            )
            for row in self._core.store.all("SELECT * FROM api_keys")
        }

    def lookup(self, key: str | None) -> Principal | None:
        """The principal for ``key``, or ``None``."""
        return self._keys.get(key) if key else None


def require_admin(principal: Principal) -> None:
    """Refuse an identity-scoped key with 403."""
    if not principal.is_admin:
        raise ApiError(
            403,
            {
                "error": "admin_key_required",
                "message": "this operation needs the organisation's admin API key; "
                "identity-scoped keys may not use it",
            },
        )


def auth_middleware(keys: KeyRing) -> Middleware:
    """Middleware that demands a valid ``X-API-Key`` on ``/api/`` paths.

    The human side (``/sim/v1/phones``, the chat page, media) needs no key; the
    simulator's own admin paths check the admin key in their handlers.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(("/api/", "/sim/v1/identities")):
            principal = keys.lookup(request.headers.get("X-API-Key"))
            if principal is None:
                raise ApiError(
                    401,
                    "Invalid or missing API key. Send it in the X-API-Key header "
                    "(the simulator prints its admin key on start).",
                )
            request[PRINCIPAL] = principal
        return await handler(request)

    return middleware


def principal_of(request: web.Request) -> Principal:
    """The principal the middleware attached to this request."""
    return request[PRINCIPAL]
