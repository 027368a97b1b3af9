"""HTTP handlers for the human side (``/sim/v1``), the chat page and uploaded media.

The phone endpoints need no API key: they stand for the humans' own phones, which only
someone at this machine can reach (the simulator binds to loopback by default).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import anyio
from aiohttp import web

from imbot.sim.accounts import Accounts
from imbot.sim.auth import principal_of
from imbot.sim.core import Core
from imbot.sim.media import MediaStore, served_headers
from imbot.sim.params import path_e164, path_uuid
from imbot.sim.requests import read_json, read_upload
from imbot.sim.responses import ApiError, json_response, not_found
from imbot.sim.router import Router
from imbot.sim.validation import KeyRequest, PhoneMessage, PhoneReaction, PhoneState, parse_body

__all__ = ["STATIC_DIR", "Phones"]

STATIC_DIR = Path(__file__).parent / "static"

PING_INTERVAL = 15.0

# The chat page sends as the human: no other site may frame it (and trick a click).
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}

_PLACEHOLDER = """<!doctype html>
<html><head><meta charset="utf-8"><title>imbot simulator</title></head>
<body><h1>imbot simulator</h1>
<p>The chat page is not installed. The API is at <code>/api/v1</code>;
the phone API at <code>/sim/v1</code>.</p></body></html>
"""


class Phones:
    """The ``/sim/v1`` routes, the chat page and ``/media``.

    Args:
        core: the simulator's shared state.
        router: the human-side rules.
        accounts: for minting identity-scoped keys.
        media: the media store.
    """

    def __init__(self, core: Core, router: Router, accounts: Accounts, media: MediaStore) -> None:
        self._core = core
        self._router = router
        self._accounts = accounts
        self._media = media

    def routes(self) -> list[web.RouteDef]:
        """Every non-API route."""
        return [
            web.get("/sim/v1/info", self.info),
            web.post("/sim/v1/identities/{handle}/api-keys", self.mint_key),
            web.post("/sim/v1/phones/{number}/messages", self.text),
            web.post("/sim/v1/phones/{number}/reactions", self.react),
            web.put("/sim/v1/phones/{number}", self.set_state),
            web.get("/sim/v1/phones/{number}/timeline", self.timeline),
            web.get("/sim/v1/phones/{number}/events", self.events),
            web.post("/sim/v1/media", self.upload),
            web.get("/media/{media_id}/{filename}", self.media),
            web.get("/", self.index),
            web.get("/static/{filename}", self.static),
        ]

    async def info(self, request: web.Request) -> web.Response:
        """``GET /sim/v1/info``."""
        return json_response(self._router.info())

    async def mint_key(self, request: web.Request) -> web.Response:
        """``POST /sim/v1/identities/{handle}/api-keys`` (admin key): an identity-scoped key."""
        principal = principal_of(request)
        raw = await request.read()
        label = parse_body(raw, KeyRequest).label if raw.strip() else None
        data = self._accounts.mint_api_key(principal, request.match_info["handle"], label)
        return json_response(data, 201)

    async def text(self, request: web.Request) -> web.Response:
        """``POST /sim/v1/phones/{number}/messages``: the human texts."""
        number = path_e164(request.match_info["number"])
        body = await read_json(request, PhoneMessage)
        return json_response({"item": self._router.human_text(number, body)}, 201)

    async def react(self, request: web.Request) -> web.Response:
        """``POST /sim/v1/phones/{number}/reactions``: the human tapbacks."""
        number = path_e164(request.match_info["number"])
        body = await read_json(request, PhoneReaction)
        return json_response(self._router.human_reaction(number, body), 201)

    async def set_state(self, request: web.Request) -> web.Response:
        """``PUT /sim/v1/phones/{number}``: reachable or not."""
        number = path_e164(request.match_info["number"])
        body = await read_json(request, PhoneState)
        return json_response(self._router.set_phone(number, body))

    async def timeline(self, request: web.Request) -> web.Response:
        """``GET /sim/v1/phones/{number}/timeline``."""
        number = path_e164(request.match_info["number"])
        return json_response(self._core.timeline.view(number))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``GET /sim/v1/phones/{number}/events``: server-sent events for one phone."""
        number = path_e164(request.match_info["number"])
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        with self._core.hub.listen(number) as stream:
            await response.prepare(request)
            try:
                await response.write(b"event: ready\ndata: {}\n\n")
                while True:
                    with anyio.move_on_after(PING_INTERVAL) as scope:
                        event, data = await stream.receive()
                    if scope.cancelled_caught:
                        await response.write(b": ping\n\n")
                        continue
                    await response.write(f"event: {event}\ndata: {data}\n\n".encode())
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                # The hub closed (shutdown) or dropped a lagging listener.
                pass
            except ConnectionError:
                # The page went away.
                return response
        return response

    async def upload(self, request: web.Request) -> web.Response:
        """``POST /sim/v1/media``: the human's upload, same store and cap as the API's."""
        filename, content_type, data = await read_upload(request, self._core.config.media_limit)
        return json_response(self._media.save(filename, content_type, data), 201)

    async def media(self, request: web.Request) -> web.Response:
        """``GET /media/{id}/{filename}``: an uploaded file, sandboxed (``served_headers``)."""
        try:
            media_id = path_uuid(request.match_info["media_id"], "media_id")
        except ApiError:
            raise not_found("Not Found") from None
        row = self._media.get(media_id)
        if row is None:
            raise not_found("Not Found")
        return web.Response(
            body=row["data"],
            content_type=row["content_type"],
            headers=served_headers(row["content_type"], row["filename"]),
        )

    async def index(self, request: web.Request) -> web.Response:
        """``GET /``: the chat page."""
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return web.Response(
                body=page.read_bytes(),
                content_type="text/html",
                charset="utf-8",
                headers=_PAGE_HEADERS,
            )
        return web.Response(text=_PLACEHOLDER, content_type="text/html", headers=_PAGE_HEADERS)

    async def static(self, request: web.Request) -> web.Response:
        """``GET /static/{file}``: the chat page's assets."""
        name = request.match_info["filename"]
        path = STATIC_DIR / name
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise not_found("Not Found")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        charset = "utf-8" if kind.startswith("text/") or kind.endswith("javascript") else None
        return web.Response(
            body=path.read_bytes(), content_type=kind, charset=charset, headers=_PAGE_HEADERS
        )
