"""The simulator conformance tests' helpers: a raw API client, a webhook receiver, polling.

These tests check the simulator's wire behaviour (statuses, headers, bodies, deliveries), so
they speak HTTP themselves rather than through ``InkboxClient``, and receive webhooks with a
recorder rather than a bot. The simulator runs on its own thread (see ``tests/sim/conftest.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
from aiohttp import web
from anyio.from_thread import BlockingPortal

from imbot.events import EVENT_TYPES
from imbot.sim import Simulator
from imbot.testing import eventually

FAST_RETRIES = (0.05, 0.1, 0.2)
PHONE = "+15555550100"
PHONE_2 = "+15555550101"


class SimHandle:
    """A running simulator plus the portal that reaches its thread."""

    def __init__(self, sim: Simulator, portal: BlockingPortal) -> None:
        self.sim = sim
        self.portal = portal
        self.base_url = sim.base_url
        self.admin_key = sim.admin_key
        self.triage_number = sim.triage_number

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every stored row, read on the simulator's thread."""
        return self.portal.call(self._snapshot)

    async def _snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        # Let background work (lifecycle steps, webhook deliveries) settle first, so two
        # snapshots differ only by what the test itself did.
        with anyio.fail_after(5):
            while self.sim.pending():
                await anyio.sleep(0.005)
        return self.sim.snapshot()

    def pending(self) -> int:
        return self.portal.call(self._pending)

    async def _pending(self) -> int:
        return self.sim.pending()


SimFactory = Callable[..., SimHandle]


@dataclass
class Resp:
    status: int
    body: Any
    headers: dict[str, str]
    elapsed: float


class Api:
    """A small async client for the simulator (aiohttp, as imbot itself uses)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str | None) -> None:
        self.session = session
        self.base_url = base_url
        self.key = key

    def as_key(self, key: str | None) -> Api:
        return Api(self.session, self.base_url, key)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Resp:
        sent = dict(headers or {})
        if self.key is not None:
            sent.setdefault("X-API-Key", self.key)
        started = time.perf_counter()
        async with self.session.request(
            method,
            self.base_url + path,
            json=json_body,
            data=data,
            params=params,
            headers=sent,
        ) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            return Resp(resp.status, body, dict(resp.headers), time.perf_counter() - started)

    async def get(self, path: str, **kw: Any) -> Resp:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return await self.call("POST", path, json_body=body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return await self.call("PATCH", path, json_body=body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return await self.call("PUT", path, json_body=body, **kw)

    async def delete(self, path: str, **kw: Any) -> Resp:
        return await self.call("DELETE", path, **kw)

    # Scenario helpers

    async def identity(self, handle: str = "echo", enabled: bool = True) -> dict[str, Any]:
        r = await self.post(
            "/api/v1/identities", {"agent_handle": handle, "imessage_enabled": enabled}
        )
        assert r.status == 201, r.body
        return dict(r.body)

    async def text(self, number: str, text: str | None, **extra: Any) -> Resp:
        return await self.post(f"/sim/v1/phones/{number}/messages", {"text": text, **extra})

    async def connect(self, number: str, handle: str = "echo") -> str:
        """The phone texts ``connect @handle``; return the conversation id."""
        r = await self.text(number, f"connect @{handle}")
        assert r.status == 201, r.body
        convs = await self.get("/api/v1/imessage/conversations")
        for conv in convs.body:
            if conv["remote_number"] == number:
                return str(conv["id"])
        raise AssertionError(f"no conversation for {number}: {convs.body}")

    async def send(self, conversation_id: str, text: str = "hi", **extra: Any) -> Resp:
        return await self.post(
            "/api/v1/imessage/messages", {"conversation_id": conversation_id, "text": text, **extra}
        )

    async def message(self, message_id: str) -> dict[str, Any]:
        r = await self.get(f"/api/v1/imessage/messages/{message_id}")
        assert r.status == 200, r.body
        return dict(r.body)

    async def key_for(self, handle: str) -> str:
        r = await self.post(f"/sim/v1/identities/{handle}/api-keys")
        assert r.status == 201, r.body
        return str(r.body["api_key"])


async def wait_until(
    probe: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.01
) -> Any:
    """``eventually`` with a truthy probe, as these tests poll: within 5 s by default."""
    return await eventually(probe, bool, timeout=timeout, interval=interval)


@dataclass
class Captured:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver; ``respond`` decides each answer (a status, or "hang")."""

    url: str = ""
    requests: list[Captured] = field(default_factory=list)
    respond: Callable[[Captured], int | str] = field(default=lambda captured: 200)
    release: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        captured = Captured(dict(request.headers), await request.read(), time.monotonic())
        self.requests.append(captured)
        action = self.respond(captured)
        if action == "hang":
            await self.release.wait()
            return web.Response(status=200)
        assert isinstance(action, int)
        return web.Response(status=action, text="ok" if action < 300 else "nope")

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        out = [c.json for c in self.requests]
        return [e for e in out if event_type is None or e["event_type"] == event_type]

    async def wait_for(
        self, count: int, event_type: str | None = None, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            found = self.events(event_type)
            return found if len(found) >= count else None

        result: list[dict[str, Any]] = await wait_until(probe, timeout)
        return result


async def subscribe(
    api: Api, identity_id: str, url: str, events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    r = await api.post(
        "/api/v1/webhooks/subscriptions",
        {
            "url": url,
            "event_types": events or list(EVENT_TYPES),
            "agent_identity_id": identity_id,
            **extra,
        },
    )
    assert r.status == 201, r.body
    return dict(r.body)
