"""Memory per idle conversation: feed one event to each of many conversations, then measure.

``python -m benchmarks.memory --conversations 100000 --mode dispatcher|bot`` runs in a fresh
process and prints one JSON object. Events are fed in batches and the batch is let go idle
before the next, so the figure is what stays behind once lanes are idle, not the peak of a
burst. Before measuring, one warm-up batch on other conversations settles imports, caches
and the allocator; ``RSS after - RSS before`` over the conversation count is the result.

* ``dispatcher`` feeds ``imbot.bot.dispatch.Dispatcher`` directly (no-op handler).
* ``bot`` feeds ``Bot.feed`` (dedupe inbox, routing to a no-op handler, state): it also
  counts the bounded dedupe window of event ids, which is per event, not per conversation.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from benchmarks.procs import rss

_TEMPLATE = (
    '{"id":"evt_%(eid)s","event_type":"imessage.received","timestamp":"2026-06-09T14:30:59Z",'
    '"data":{"message":{"id":"%(mid)s","conversation_id":"%(cid)s",'
    '"assignment_id":"c41f9a20-1d7b-47a5-b8e9-33a0f6d2e713","direction":"inbound",'
    '"remote_number":"+15555550142","content":"hello","message_type":"message",'
    '"service":"imessage","send_style":null,"media":null,"was_downgraded":false,'
    '"status":"received","error_code":null,"error_message":null,"error_reason":null,'
    '"error_detail":null,"is_read":false,"recipients":null,"reactions":null,'
    '"created_at":"2026-06-09T14:30:58Z","updated_at":"2026-06-09T14:30:58Z"},'
    '"reaction":null,"contacts":[],"agent_identities":[]}}'
)


def event_body(n: int, prefix: str) -> bytes:
    """The n-th distinct ``imessage.received`` body, in its own conversation."""
    cid = str(uuid.UUID(int=zlib.crc32(prefix.encode()) << 64 | n))
    # The message id names the event for dedupe: the warm-up must not share the measured ids.
    mid = str(uuid.UUID(int=(1 << 127) | zlib.crc32(prefix.encode()) << 64 | n))
    return (_TEMPLATE % {"eid": f"{prefix}{n:08d}", "mid": mid, "cid": cid}).encode()


async def _wait_idle(count: Callable[[], int], timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while count():
            await anyio.sleep(0.001)


async def _feed_batches(
    feed: Callable[[bytes], Awaitable[Any]],
    idle: Callable[[], Awaitable[None]],
    total: int,
    prefix: str,
    batch: int,
) -> None:
    for start in range(0, total, batch):
        for n in range(start, min(total, start + batch)):
            await feed(event_body(n, prefix))
        await idle()


async def measure_dispatcher(conversations: int, batch: int) -> dict[str, Any]:
    """Feed ``imbot.bot.dispatch.Dispatcher`` one event per conversation."""
    from imbot.bot.dispatch import Dispatcher
    from imbot.events import parse_event

    handled = 0

    async def handle(_event: Any) -> None:
        nonlocal handled
        handled += 1

    dispatcher = Dispatcher(handle, max_concurrency=64)

    async def feed(body: bytes) -> None:
        event = parse_event(body)
        dispatcher.submit(event.conversation_id or "", event)

    async def idle() -> None:
        await _wait_idle(lambda: dispatcher.lane_count)

    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        result = await _measure(feed, idle, conversations, batch, lambda: dispatcher.lane_count)
        await dispatcher.drain(timeout=10)
    result["handled"] = handled
    return result


async def measure_bot(conversations: int, batch: int) -> dict[str, Any]:
    """Feed ``Bot.feed`` one event per conversation, handled by a no-op handler."""
    from imbot import Bot
    from imbot.events import parse_event

    handled = 0
    # No request is made: the handler does nothing. The key and URL only satisfy start-up.
    bot = Bot(api_key="ApiKey_benchmark", base_url="http://127.0.0.1:9", signing_key="whsec_x")

    @bot.on_message()
    async def on_message(_ctx: Any) -> None:
        nonlocal handled
        handled += 1

    def lanes() -> int:
        return int(bot.health()["lanes"])

    async with bot:

        async def feed(body: bytes) -> None:
            await bot.feed(parse_event(body), body)

        async def idle() -> None:
            await _wait_idle(lanes)

        result = await _measure(feed, idle, conversations, batch, lanes)
    result["handled"] = handled
    return result


async def _measure(
    feed: Callable[[bytes], Awaitable[Any]],
    idle: Callable[[], Awaitable[None]],
    conversations: int,
    batch: int,
    lanes: Callable[[], int],
) -> dict[str, Any]:
    await _feed_batches(feed, idle, batch, "warm", batch)
    gc.collect()
    before = rss()
    blocks_before = sys.getallocatedblocks()
    t0 = time.perf_counter()
    await _feed_batches(feed, idle, conversations, "conv", batch)
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = rss()
    blocks_after = sys.getallocatedblocks()
    return {
        "conversations": conversations,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_conversation": (after - before) / conversations,
        "blocks_per_conversation": (blocks_after - blocks_before) / conversations,
        "lanes_after": lanes(),
        "feed_seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m benchmarks.memory``: prints one JSON object."""
    parser = argparse.ArgumentParser(description="memory per idle conversation")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--mode", choices=("dispatcher", "bot"), default="dispatcher")
    args = parser.parse_args(argv)
    measure = measure_dispatcher if args.mode == "dispatcher" else measure_bot
    result = anyio.run(measure, args.conversations, args.batch)
    result["mode"] = args.mode
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
