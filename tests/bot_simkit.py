"""A real simulator, a real client and a human to play: shared by the scenario tests.

Everything runs over real HTTP on 127.0.0.1 with free ports. Waiting polls the simulator
with a deadline; nothing sleeps a fixed time to wait for an effect.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import anyio

from imbot.client.client import InkboxClient
from imbot.events import EVENT_TYPES
from imbot.models import Identity, Message
from imbot.sim import Simulator

T = TypeVar("T")

FAST_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0)


@dataclass
class Kit:
    """A simulator with one iMessage-enabled identity, and helpers to play the human."""

    sim: Simulator
    http: aiohttp.ClientSession
    admin: InkboxClient
    client: InkboxClient
    identity: Identity
    api_key: str
    signing_key: str

    @property
    def handle(self) -> str:
        return self.identity.agent_handle

    async def subscribe(self, port: int, path: str = "/webhook") -> None:
        """Point the identity's webhooks at a bot listening on ``port``."""
        await self.client.create_subscription(
            agent_identity_id=self.identity.id,
            url=f"http://127.0.0.1:{port}{path}",
            event_types=list(EVENT_TYPES),
        )

    async def text(self, number: str, text: str) -> dict[str, Any]:
        """The human at ``number`` sends ``text`` (to their most recent agent thread)."""
        async with self.http.post(
            f"/sim/v1/phones/{number}/messages", json={"text": text, "to": None}
        ) as response:
            assert response.status == 201, await response.text()
            item: dict[str, Any] = (await response.json())["item"]
            return item

    async def connect(self, number: str) -> None:
        """The human texts ``connect @handle`` to the router."""
        await self.text(number, f"connect @{self.handle}")

    async def timeline(self, number: str) -> dict[str, Any]:
        """The human's phone: threads and items."""
        async with self.http.get(f"/sim/v1/phones/{number}/timeline") as response:
            assert response.status == 200, await response.text()
            data: dict[str, Any] = await response.json()
            return data

    async def agent_texts(self, number: str) -> list[str]:
        """What the agent has sent this human so far, oldest first."""
        data = await self.timeline(number)
        return [
            item["text"]
            for item in data["items"]
            if item["thread"] == self.handle and item["from"] == "them" and item["text"]
        ]

    async def typing(self, number: str) -> bool:
        """Whether the human sees the agent typing."""
        data = await self.timeline(number)
        return any(t["thread"] == self.handle and t["typing"] for t in data["threads"])

    async def outbound(self) -> list[Message]:
        """Every outbound message the identity sent, oldest first (from the API)."""
        found = [m async for m in self.client.iter_messages(page_size=200)]
        return sorted((m for m in found if m.direction == "outbound"), key=lambda m: m.created_at)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Poll ``probe`` until ``accept`` says yes, or fail after ``timeout`` seconds."""
    last: T | None = None
    with anyio.move_on_after(timeout):
        while True:
            last = await probe()
            if accept(last):
                return last
            await anyio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value: {last!r}")


@asynccontextmanager
async def simulated(
    handle: str = "echo",
    *,
    retry_delays: tuple[float, ...] = FAST_RETRIES,
    db: str = ":memory:",
    send_cap: int | None = None,
) -> AsyncIterator[Kit]:
    """Run a simulator with an iMessage-enabled identity ``handle`` and its keys."""
    async with (
        Simulator(
            db=db,
            port=0,
            delivery_delay=0.0,
            webhook_retry_delays=retry_delays,
            send_cap=send_cap,
            webhook_timeout=5.0,
        ) as sim,
        aiohttp.ClientSession(base_url=sim.base_url) as http,
        InkboxClient(api_key=sim.admin_key, base_url=sim.base_url) as admin,
    ):
        identity = await admin.create_identity(handle, imessage_enabled=True)
        async with http.post(
            f"/sim/v1/identities/{handle}/api-keys", headers={"X-API-Key": sim.admin_key}
        ) as response:
            assert response.status == 201, await response.text()
            api_key = (await response.json())["api_key"]
        async with InkboxClient(api_key=api_key, base_url=sim.base_url) as client:
            signing = await client.create_signing_key(handle)
            yield Kit(
                sim=sim,
                http=http,
                admin=admin,
                client=client,
                identity=identity,
                api_key=api_key,
                signing_key=signing.signing_key,
            )


@asynccontextmanager
async def serving(kit: Kit, bot: Any) -> AsyncIterator[int]:
    """Serve ``bot`` on a free port with the identity's webhooks pointed at it.

    Leaving the block stops the bot gracefully (running handlers finish).
    """
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(bot.serve, "127.0.0.1", 0)
        await kit.subscribe(port)
        yield port
        bot.stop()


async def snapshot(items: list[T]) -> list[T]:
    """A copy of a list, as an awaitable probe for ``eventually``."""
    return list(items)


def free_port() -> int:
    """A TCP port that was free a moment ago (for a bot run as a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
