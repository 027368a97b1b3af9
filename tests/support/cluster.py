"""Bot runtimes sharing one Redis inside the test process: signed events posted to each.

``tests/unit/test_redis_cluster.py`` and ``test_redis_turns.py`` run two ``Bot``s on one
``redis-server``, each on its own webhook port, and spread events over both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anyio

from imbot import Bot
from imbot.bot.cluster import Cluster
from imbot.testing.events import message_event
from imbot.webhooks import sign

KEY = "whsec_cluster_tests"


def envelope(conversation: str, text: str, *, sender: str = "+15555550100") -> bytes:
    """A message event's webhook body."""
    event = message_event(text, conversation_id=conversation, sender=sender)
    return json.dumps(event.to_wire()).encode()


async def post(http: aiohttp.ClientSession, port: int, body: bytes) -> int:
    """Post ``body`` signed with ``KEY`` to the bot on ``port``; its status."""
    headers = {**sign(body, KEY), "Content-Type": "application/json"}
    async with http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r:
        return r.status


@asynccontextmanager
async def served(bot: Bot) -> AsyncIterator[int]:
    """Serve ``bot`` on a free loopback port for the block."""
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(bot.serve, "127.0.0.1", 0)
        try:
            yield port
        finally:
            bot.stop()


def cluster_of(bot: Bot) -> Cluster:
    """The running bot's ``Cluster``."""
    runtime = bot._runtime
    assert runtime is not None and runtime.cluster is not None
    return runtime.cluster
