"""The aiohttp application: error rendering, host and origin checks, API keys, every route."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from imbot.sim.accounts import Accounts
from imbot.sim.api import Api
from imbot.sim.auth import KeyRing, auth_middleware
from imbot.sim.chaos_hooks import ChaosApi, chaos_middleware
from imbot.sim.core import Core
from imbot.sim.guard import guard_middleware
from imbot.sim.media import MediaStore
from imbot.sim.phone import Phones
from imbot.sim.queries import Queries
from imbot.sim.responses import ApiError, json_response
from imbot.sim.router import Router
from imbot.sim.service import Messaging
from imbot.sim.subscriptions import Subscriptions
from imbot.sim.visibility import Visibility

__all__ = ["build_app"]

log = logging.getLogger("imbot.sim")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# JSON bodies are small (a text is at most 18,996 characters); media goes through the
# streaming multipart reader, which this limit does not apply to.
_CLIENT_MAX_SIZE = 2 * 1024 * 1024

_REASONS = {404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as FastAPI-style JSON, as Inkbox does."""
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return json_response(
            {"detail": _REASONS.get(error.status, error.reason)}, error.status, headers
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response({"detail": "Internal Server Error"}, 500)


def build_app(core: Core) -> web.Application:
    """Wire the rules to their routes and return the application."""
    keys = KeyRing(core)
    media = MediaStore(core)
    accounts = Accounts(core, keys)
    visibility = Visibility(core)
    messaging = Messaging(core, media, visibility)
    queries = Queries(core, visibility)
    subscriptions = Subscriptions(core, accounts)
    router = Router(core, media)
    app = web.Application(
        middlewares=[
            error_middleware,
            guard_middleware(core.config.host, core.config.allowed_hosts),
            # Before the key check: an outage or an overloaded front end answers first.
            chaos_middleware(core),
            auth_middleware(keys),
        ],
        client_max_size=_CLIENT_MAX_SIZE,
    )
    app.add_routes(
        Api(
            core,
            messaging=messaging,
            queries=queries,
            accounts=accounts,
            subscriptions=subscriptions,
            media=media,
        ).routes()
    )
    app.add_routes(Phones(core, router, accounts, media).routes())
    app.add_routes(ChaosApi(core).routes())
    return app
