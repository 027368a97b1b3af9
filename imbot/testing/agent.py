"""A simulator with one agent identity, for tests that run the bot themselves.

``BotHarness`` runs your bot for you. When a test needs to hold the bot itself (one built
with its own ``client=``, a bot run as a separate process, webhooks posted by hand),
``simulated()`` gives it a running simulator with one iMessage-enabled agent identity, its
keys and an API client scoped to it, and helpers to play the humans; ``serving()`` runs a
bot on a free loopback port with the identity's webhooks pointed at it. ``BotHarness`` sets
up its identity with the same ``sim_agent()``.

```python
from imbot import Bot
from imbot.testing import eventually, serving, simulated


async def test_echo():
    async with simulated("echo") as agent:
        bot = Bot(client=agent.client, signing_key=agent.signing_key)

        @bot.on_message()
        async def echo(ctx):
            await ctx.reply(ctx.text)

        async with serving(agent, bot):
            await agent.connect("+15555550123")
            await agent.text("+15555550123", "hi")
            await eventually(lambda: agent.agent_texts("+15555550123"), lambda t: "hi" in t)
```
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import anyio

from imbot.client import InkboxClient
from imbot.errors import Conflict
from imbot.events import EVENT_TYPES
from imbot.sim import Chaos, Simulator
from imbot.testing.phone import Phone

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.models import Identity, Message, WebhookSubscription

__all__ = ["SimAgent", "local_simulator", "serving", "sim_agent", "simulated"]

# Webhook redelivery delays for tests (a production simulator waits minutes to hours). Quick:
# a webhook that keeps failing gives up within four seconds, inside the harness's default
# five-second deadline. Patient: ten tries over six seconds, time for a bot to restart.
_QUICK_RETRIES = (0.05, 0.2, 0.5, 1.0, 2.0)
_PATIENT_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0)


def local_simulator(
    *,
    db: str = ":memory:",
    delivery_delay: float = 0.0,
    connect_event: bool = True,
    retry_delays: tuple[float, ...] = _QUICK_RETRIES,
    webhook_timeout: float = 5.0,
    send_cap: int | None = 100,
    chaos: Chaos | str | None = None,
) -> Simulator:
    """A ``Simulator`` set up for tests (not started): in memory, on a free loopback port.

    Example:
        >>> async with local_simulator(delivery_delay=0.2) as sim:
        ...     print(sim.base_url)

    Args:
        db: the store (``:memory:``, or a SQLite file to keep between runs).
        delivery_delay: seconds from ``sent`` to ``delivered``.
        connect_event: deliver the ``connect @handle`` text to the agent as a message.
        retry_delays: seconds before each webhook redelivery (five, within four seconds,
            by default).
        webhook_timeout: seconds the simulator waits for a bot to answer a webhook.
        send_cap: the identity's sends per minute (``None`` for no cap).
        chaos: chaos mode, on from the start (see ``Simulator``); ``sim_agent`` sets up its
            identity with chaos paused.

    Returns:
        The simulator; ``async with`` starts it.
    """
    return Simulator(
        db=db,
        port=0,
        delivery_delay=delivery_delay,
        connect_event=connect_event,
        webhook_retry_delays=retry_delays,
        webhook_timeout=webhook_timeout,
        send_cap=send_cap,
        chaos=chaos,
    )


@dataclass(frozen=True, slots=True)
class SimAgent:
    """One iMessage-enabled agent identity on a running simulator, and the humans who text it.

    Made by ``simulated()`` (which starts the simulator too) or ``sim_agent(sim)``.

    Example:
        >>> bot = Bot(client=agent.client, signing_key=agent.signing_key)
        >>> await agent.connect("+15555550123")
        >>> await agent.text("+15555550123", "hi")

    Attributes:
        sim: the running simulator.
        http: a session on the simulator's origin (for ``/sim/v1``).
        admin: a client with the simulator's admin key.
        client: a client with the identity's own API key: give it to the bot.
        identity: the agent identity.
        api_key: the identity-scoped API key.
        signing_key: the identity's webhook signing key.
    """

    sim: Simulator
    http: aiohttp.ClientSession
    admin: InkboxClient
    client: InkboxClient
    identity: Identity
    api_key: str
    signing_key: str

    @property
    def handle(self) -> str:
        """The agent's handle."""
        return self.identity.agent_handle

    def phone(self, number: str) -> Phone:
        """The phone of the human at ``number`` (E.164)."""
        return Phone(self.http, number)

    async def subscribe(self, target: int | str, path: str = "/webhook") -> WebhookSubscription:
        """Send the identity's five iMessage events to a bot (with chaos mode paused).

        Args:
            target: the bot's port on 127.0.0.1, or its full webhook URL.
            path: the webhook path, when ``target`` is a port.

        Returns:
            The subscription.
        """
        url = f"http://127.0.0.1:{target}{path}" if isinstance(target, int) else target
        with self.sim.chaos.paused():  # the test's set-up, not the bot's bad day
            return await self.client.create_subscription(
                agent_identity_id=self.identity.id, url=url, event_types=list(EVENT_TYPES)
            )

    async def text(self, number: str, text: str) -> dict[str, Any]:
        """The human at ``number`` texts their most recent thread (the router's at first).

        Returns:
            The human's new timeline item, as the simulator's JSON.
        """
        return await self.phone(number).text(text)

    async def connect(self, number: str) -> None:
        """The human at ``number`` texts ``connect @handle`` to the router."""
        await self.text(number, f"connect @{self.handle}")

    async def timeline(self, number: str) -> dict[str, Any]:
        """What the human's phone shows: its ``threads`` and ``items``."""
        return await self.phone(number).timeline()

    async def agent_texts(self, number: str) -> list[str]:
        """The texts the agent has sent the human so far, oldest first."""
        data = await self.phone(number).timeline()
        return [
            item["text"]
            for item in data["items"]
            if item["thread"] == self.handle
            and item["from"] == "them"
            and item["text"]
            and not item.get("system")  # Inkbox's note at connect, not the agent's
        ]

    async def typing(self, number: str) -> bool:
        """Whether the human sees the agent typing now."""
        data = await self.phone(number).timeline()
        return any(t["thread"] == self.handle and t["typing"] for t in data["threads"])

    async def outbound(self) -> list[Message]:
        """Every message the identity sent, oldest first (read through the API)."""
        found = [m async for m in self.client.iter_messages(page_size=200)]
        return sorted((m for m in found if m.direction == "outbound"), key=lambda m: m.created_at)


@asynccontextmanager
async def sim_agent(sim: Simulator, handle: str = "testbot") -> AsyncIterator[SimAgent]:
    """Set up an iMessage-enabled agent identity on a running simulator, with its keys.

    Creates the identity (or turns iMessage on for an existing one), mints an
    identity-scoped API key and a webhook signing key, and opens the clients; they close
    when the block ends. The identity stays in the simulator.

    Example:
        >>> async with Simulator() as sim, sim_agent(sim, "helper") as agent:
        ...     bot = Bot(client=agent.client, signing_key=agent.signing_key)

    Args:
        sim: the running simulator.
        handle: the agent handle.

    Yields:
        The agent.

    Raises:
        RuntimeError: the simulator refused to mint the API key.
    """
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(sim.base_url))
        admin = await stack.enter_async_context(
            InkboxClient(api_key=sim.admin_key, base_url=sim.base_url)
        )
        client, identity, api_key, signing_key = await _set_up(stack, sim, http, admin, handle)
        yield SimAgent(sim, http, admin, client, identity, api_key, signing_key)


async def _set_up(
    stack: AsyncExitStack,
    sim: Simulator,
    http: aiohttp.ClientSession,
    admin: InkboxClient,
    handle: str,
) -> tuple[InkboxClient, Identity, str, str]:
    """The identity, its keys and its client; with chaos mode paused (set-up is not the test)."""
    with sim.chaos.paused():
        try:
            identity = await admin.create_identity(handle, imessage_enabled=True)
        except Conflict:
            identity = await admin.update_identity(handle, imessage_enabled=True)
        async with http.post(
            f"/sim/v1/identities/{quote(handle)}/api-keys",
            headers={"X-API-Key": sim.admin_key},
            json={},
        ) as response:
            body = await response.text()
            if response.status != 201:
                raise RuntimeError(f"minting an API key failed: {response.status} {body}")
            api_key = str(json.loads(body)["api_key"])
        client = await stack.enter_async_context(
            InkboxClient(api_key=api_key, base_url=sim.base_url)
        )
        signing_key = (await admin.create_signing_key(handle)).signing_key
    return client, identity, api_key, signing_key


@asynccontextmanager
async def simulated(
    handle: str = "echo",
    *,
    retry_delays: tuple[float, ...] = _PATIENT_RETRIES,
    db: str = ":memory:",
    send_cap: int | None = None,
    delivery_delay: float = 0.0,
    chaos: Chaos | str | None = None,
) -> AsyncIterator[SimAgent]:
    """Run a simulator (see ``local_simulator``) with one agent identity (see ``sim_agent``).

    Example:
        >>> async with simulated("echo") as agent:
        ...     bot = Bot(client=agent.client, signing_key=agent.signing_key)

    Args:
        handle: the agent handle.
        retry_delays: seconds before each webhook redelivery (ten, over six seconds, by
            default: time for a bot process to restart).
        db: the simulator's store.
        send_cap: the identity's sends per minute (no cap by default).
        delivery_delay: seconds from ``sent`` to ``delivered``.
        chaos: chaos mode (a ``Chaos`` or a spec such as ``"seed=7,api=10%"``): on once
            the identity is set up; ``agent.subscribe`` (and so ``serving``) pauses it.

    Yields:
        The agent; the simulator stops when the block ends.
    """
    simulator = local_simulator(
        db=db,
        retry_delays=retry_delays,
        send_cap=send_cap,
        delivery_delay=delivery_delay,
        chaos=chaos,
    )
    async with simulator as sim, sim_agent(sim, handle) as agent:
        yield agent


@asynccontextmanager
async def serving(agent: SimAgent, bot: Bot) -> AsyncIterator[int]:
    """Serve ``bot`` on a free loopback port, with the agent's webhooks pointed at it.

    The bot must be set up to talk to the simulator (``Bot(client=agent.client,
    signing_key=agent.signing_key)``). Leaving the block stops it gracefully: running
    handlers finish first.

    Example:
        >>> async with serving(agent, bot) as port:
        ...     await agent.connect("+15555550123")

    Args:
        agent: the agent whose webhooks the bot receives.
        bot: the bot, not running.

    Yields:
        The bot's port on 127.0.0.1.
    """
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(bot.serve, "127.0.0.1", 0)
        await agent.subscribe(port)
        yield port
        bot.stop()
