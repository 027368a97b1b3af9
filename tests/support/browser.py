"""The chat-page browser test's helpers: Chromium lookup and a plain-aiohttp echo bot.

The bot is written with plain aiohttp on purpose: it checks the simulator and the page
without going through imbot's own client or bot runtime.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from aiohttp import ClientSession, FormData, web
from anyio.abc import TaskGroup

from imbot.events import EVENT_TYPES
from imbot.testing import tiny_png
from imbot.webhooks import verify

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CONNECT = re.compile(r"\s*connect\s+@?\S+\s*", re.IGNORECASE)


def chromium_executable() -> str:
    """Return the path of Debian's Chromium, or skip the test (fail it under CI).

    Returns:
        The absolute path of the ``chromium`` binary.
    """
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium not installed: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class EchoBot:
    """A minimal iMessage bot on the simulator's API: reads, types, then echoes.

    On ``imessage.received`` it marks the conversation read, shows typing, waits
    ``think`` seconds and replies ``"echo: <text>"``; when the text is ``"image"`` it
    uploads a PNG and sends it instead, and a ``connect @handle`` text gets a greeting.
    Every webhook's signature is verified.

    Attributes:
        received: inbound messages (``data.message``) in arrival order.
        reactions: inbound tapbacks (``data.reaction``) in arrival order.
        errors: anything that went wrong inside the bot (the test asserts it stays empty).
        reaction_arrived: set when the first ``imessage.reaction_received`` arrives.
    """

    def __init__(self, session: ClientSession, base_url: str, handle: str, think: float) -> None:
        """Prepare a bot; ``start`` registers it with the simulator.

        Args:
            session: the HTTP session used for every API call.
            base_url: the simulator's origin, e.g. ``http://127.0.0.1:54321``.
            handle: the agent handle to create.
            think: seconds between the typing indicator and the reply.
        """
        self.session = session
        self.base_url = base_url
        self.handle = handle
        self.think = think
        self.api_key = ""
        self.secret = ""
        self.identity_id = ""
        self.received: list[dict[str, Any]] = []
        self.reactions: list[dict[str, Any]] = []
        self.errors: list[BaseException | str] = []
        self.reaction_arrived = anyio.Event()
        self.png = tiny_png(210, 140, (90, 200, 250), (88, 86, 214))
        self._tg: TaskGroup | None = None

    async def call(
        self, method: str, path: str, *, key: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Call the simulator's API and return the JSON body, failing on a non-2xx status.

        Args:
            method: the HTTP method.
            path: the path under the origin, e.g. ``/api/v1/imessage/typing``.
            key: the API key to send; the bot's identity-scoped key when omitted.
            **kwargs: passed on to ``aiohttp.ClientSession.request``.

        Returns:
            The decoded JSON body (``{}`` for an empty one).
        """
        headers = {"X-API-Key": key or self.api_key, **kwargs.pop("headers", {})}
        async with self.session.request(
            method, self.base_url + path, headers=headers, **kwargs
        ) as response:
            text = await response.text()
            assert response.status < 300, f"{method} {path} -> {response.status}: {text}"
            return json.loads(text) if text else {}

    async def start(self, admin_key: str, webhook_url: str) -> None:
        """Create the identity, its scoped key and its webhook subscription.

        Args:
            admin_key: the simulator's admin key.
            webhook_url: where the simulator should POST the bot's events.
        """
        identity = await self.call(
            "POST",
            "/api/v1/identities/",
            key=admin_key,
            json={"agent_handle": self.handle, "imessage_enabled": True},
        )
        self.identity_id = identity["id"]
        scoped = await self.call(
            "POST", f"/sim/v1/identities/{self.handle}/api-keys", key=admin_key
        )
        self.api_key = scoped["api_key"]
        subscription = await self.call(
            "POST",
            "/api/v1/webhooks/subscriptions",
            key=admin_key,
            json={
                "url": webhook_url,
                "event_types": list(EVENT_TYPES),
                "agent_identity_id": self.identity_id,
            },
        )
        self.secret = subscription.get("signing_key") or ""
        if not self.secret:
            rotated = await self.call(
                "POST", f"/api/v1/identities/{self.handle}/signing-key", key=admin_key, json={}
            )
            self.secret = rotated["signing_key"]

    async def webhook(self, request: web.Request) -> web.Response:
        """Receive one signed webhook: verify it, record it, answer 200 at once."""
        body = await request.read()
        try:
            verify(body, request.headers, self.secret)
        except Exception as error:
            self.errors.append(error)
            return web.Response(status=401)
        envelope = json.loads(body)
        data = envelope["data"]
        if envelope["event_type"] == "imessage.received" and self._tg is not None:
            self.received.append(data["message"])
            self._tg.start_soon(self._answer, data["message"])
        elif envelope["event_type"] == "imessage.reaction_received":
            self.reactions.append(data["reaction"])
            self.reaction_arrived.set()
        return web.Response(status=200)

    async def _answer(self, message: dict[str, Any]) -> None:
        try:
            conversation = {"conversation_id": message["conversation_id"]}
            await self.call("POST", "/api/v1/imessage/mark-read", json=conversation)
            await self.call("POST", "/api/v1/imessage/typing", json=conversation)
            await anyio.sleep(self.think)  # the bot "thinks"; this is not a wait for the UI
            body: dict[str, Any] = dict(conversation)
            text = message.get("content")
            if text == "image":
                form = FormData()
                form.add_field("file", self.png, filename="reply.png", content_type="image/png")
                upload = await self.call("POST", "/api/v1/imessage/media", data=form)
                body["media_urls"] = [upload["media_url"]]
            elif text is not None and CONNECT.fullmatch(text):
                # The simulator hands the connect text itself to the agent: greet.
                body["text"] = f"Hi, I'm @{self.handle}! Text me anything and I'll echo it."
            else:
                body["text"] = f"echo: {text if text is not None else '[image]'}"
            await self.call(
                "POST",
                "/api/v1/imessage/messages",
                json=body,
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
        except Exception as error:
            self.errors.append(error)


@asynccontextmanager
async def running_bot(
    session: ClientSession, base_url: str, admin_key: str, *, handle: str, think: float = 1.0
) -> AsyncIterator[EchoBot]:
    """Run an ``EchoBot`` on 127.0.0.1 (free port), registered with the simulator.

    Args:
        session: the HTTP session for API calls.
        base_url: the simulator's origin.
        admin_key: the simulator's admin key.
        handle: the agent handle to create.
        think: seconds between typing and the reply.

    Yields:
        The running bot; its webhook server stops when the block exits.
    """
    bot = EchoBot(session, base_url, handle, think)
    app = web.Application()
    app.router.add_post("/webhook", bot.webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with anyio.create_task_group() as tg:
            bot._tg = tg
            await bot.start(admin_key, f"http://127.0.0.1:{port}/webhook")
            yield bot
            tg.cancel_scope.cancel()
    finally:
        bot._tg = None
        await runner.cleanup()
