"""The phone's event stream (SSE): ready, item, thread and typing events; prompt shutdown."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import anyio
from anyio.from_thread import BlockingPortal
from support.simapi import PHONE, Api, SimHandle

from imbot.sim import Simulator


class EventStream:
    """Reads ``event:``/``data:`` pairs from an SSE response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self) -> tuple[str, Any] | None:
        event, data = "message", ""
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
            elif line == "" and data:
                return event, json.loads(data)

    async def until(self, event: str, predicate: Any = lambda data: True) -> Any:
        while True:
            got = await self.next()
            assert got is not None, f"stream ended before {event}"
            if got[0] == event and predicate(got[1]):
                return got[1]


async def test_stream_delivers_items_threads_and_typing(
    api: Api, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        await api.identity()
        url = f"{api.base_url}/sim/v1/phones/{PHONE}/events"
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            stream = EventStream(resp)
            assert await stream.next() == ("ready", {})
            await api.text(PHONE, "connect @echo")
            thread = await stream.until("thread")
            assert thread["thread"] == "echo" and thread["status"] == "active"
            conv = thread["conversation_id"]
            mine = await stream.until("item", lambda d: d["from"] == "me")
            assert mine["text"] == "connect @echo" and mine["thread"] == "router"
            reply = await stream.until("item", lambda d: d["from"] == "them")
            assert reply["text"].startswith("Connected to @echo")
            assert (
                await api.post("/api/v1/imessage/typing", {"conversation_id": conv})
            ).status == 200
            assert await stream.until("typing") == {"thread": "echo", "typing": True}
            sent = (await api.send(conv, "hello from echo")).body["message"]
            item = await stream.until("item", lambda d: d["id"] == sent["id"])
            assert item["status"] == "delivered" and item["from"] == "them"
            assert await stream.until("typing") == {"thread": "echo", "typing": False}
            await api.post("/api/v1/imessage/mark-read", {"conversation_id": conv})
            read = await stream.until("item", lambda d: d["id"] == mine["id"])
            assert read["status"] == "read"
            await api.post(
                "/api/v1/imessage/reactions", {"message_id": mine["id"], "reaction": "love"}
            )
            reacted = await stream.until("item", lambda d: d["id"] == mine["id"] and d["reactions"])
            assert reacted["reactions"][0]["reaction"] == "love"


async def test_stream_rejects_bad_numbers(api: Api) -> None:
    with anyio.fail_after(10):
        r = await api.get("/sim/v1/phones/not-a-number/events")
        assert r.status == 422
        assert r.body["detail"][0]["loc"] == ["path", "number"]


async def test_streams_close_promptly_on_shutdown(
    portal: BlockingPortal, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(15):
        manager = portal.wrap_async_context_manager(Simulator())
        sim = manager.__enter__()
        handle = SimHandle(sim, portal)
        url = f"{handle.base_url}/sim/v1/phones/{PHONE}/events"
        async with session.get(url) as resp:
            stream = EventStream(resp)
            assert await stream.next() == ("ready", {})
            started = time.perf_counter()
            await anyio.to_thread.run_sync(manager.__exit__, None, None, None)
            assert time.perf_counter() - started < 2.0
            assert await stream.next() is None
