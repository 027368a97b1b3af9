"""Dead letters are shared: ``imbot dead-letters --inbox redis://...`` from any machine.

An event that one process gave up on is listed by the command pointed at Redis, and a
replay from there is picked up by a worker that is running, without a restart.
"""

from __future__ import annotations

import anyio
import pytest

from imbot import Bot, Context, HandlerRetry, MessageReceived
from imbot.bot.inbox import event_key
from imbot.cli import main
from imbot.errors import ConnectError
from imbot.storage import open_inbox_store
from imbot.testing import eventually, message_event
from tests.support import snapshot


async def test_a_dead_letter_is_listed_and_replayed_into_a_running_worker(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{redis_url}?lease=1"
    seen: list[str] = []
    api_down = True
    bot = Bot(
        api_key="ApiKey_test",
        base_url="http://127.0.0.1:9",
        store=url,
        handler_retry=HandlerRetry(deadline=0, first_delay=0.01, max_delay=0.01),
    )

    @bot.on_message()
    async def record(ctx: Context[MessageReceived]) -> None:
        if api_down:
            raise ConnectError("refused")  # transient: retried until the deadline
        seen.append(ctx.text)

    event = message_event("buried", conversation_id="conv-dead-letter")
    key = event_key(event)
    async with bot:
        assert await bot.feed(event)
        store = open_inbox_store(url)  # the command's view, from anywhere
        try:
            letters = await eventually(store.dead_letters, lambda found: len(found) == 1)
        finally:
            await store.close()
        assert letters[0].event_id == key
        assert await anyio.to_thread.run_sync(main, ["dead-letters", "list", "--inbox", url]) == 0
        listed = capsys.readouterr().out
        assert key in listed and "ConnectError" in listed
        api_down = False
        argv = ["dead-letters", "replay", key, "--inbox", url]
        assert await anyio.to_thread.run_sync(main, argv) == 0
        assert "a running worker handles them" in capsys.readouterr().out
        # Picked up by the running bot, without a restart.
        assert await eventually(lambda: snapshot(seen), lambda got: got == ["buried"], timeout=10)
    remaining = open_inbox_store(url)
    try:
        assert await remaining.dead_letters() == []
        assert await remaining.pending() == []
    finally:
        await remaining.close()
