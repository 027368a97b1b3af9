"""Redis memory for sizing: per idle conversation, per handled event, per pending event.

``python -m benchmarks.redis_memory [--conversations 10000] [--url redis://...]`` starts a
``redis-server`` of its own (or uses ``--url``, which it empties first: give it a scratch
database), runs a ``Bot`` on it in this process, feeds it events with ``Bot.feed`` and reads
Redis's ``used_memory`` (``INFO memory``) between phases. It prints a table and one JSON
line. The figures ``docs/deploying.md`` quotes come from it.

1. **Conversations**: N conversations get one message each; the handler stores a small
   state (``{"count": 1, "name": "Ada Lovelace", "plan": "pro"}``). Once all are handled,
   ``(after - before) / N`` is what an idle conversation costs, its one event's dedupe
   record included.
2. **Handled events**: N more messages, one per conversation; the handler changes the count
   only. ``delta / N`` is what each handled event leaves behind: its id, kept for the dedupe
   window (7 days), whatever its conversation.
3. **Pending events**: N messages over N/10 new conversations whose handler waits; all are
   accepted (acknowledged) and none is finished. ``delta / N`` is what an event costs
   between its ``200`` and the end of its handler: its body, its place in its
   conversation's order, its dedupe record.

Idle conversation state without its event is (1) minus (2). ``MEMORY USAGE`` of a sample of
each kind of key is shown as well, grouped by the key's second segment (``imbot:<kind>:…``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from typing import Any

import anyio

from benchmarks.memory import event_body as _template_body
from benchmarks.redis_proc import RedisProc

_STATE = {"name": "Ada Lovelace", "plan": "pro"}


class _Server:
    """What the script needs of Redis: INFO, MEMORY USAGE and SCAN, over redis-py."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def usage_by_kind(self, sample: int = 200) -> dict[str, dict[str, float]]:
        kinds: dict[str, list[int]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        for key in self.client.scan_iter(count=1000):
            name = key.decode(errors="replace")
            parts = name.split(":")
            kind = parts[1] if len(parts) > 2 else name
            counts[kind] += 1
            if len(kinds[kind]) < sample:
                kinds[kind].append(int(self.client.memory_usage(key) or 0))
        return {
            kind: {"keys": counts[kind], "avg_bytes": sum(v) / len(v)}
            for kind, v in sorted(kinds.items())
        }


async def _run_phase(
    url: str,
    bodies: list[bytes],
    *,
    block: bool,
    server: _Server,
    settle: float = 0.5,
) -> dict[str, Any]:
    """Start a bot on ``url``, feed ``bodies``, wait until handled (or accepted); measure."""
    from imbot import Bot
    from imbot.events import parse_event

    handled = 0
    release = anyio.Event()
    # No request is made: the handler never replies. The key and URL only satisfy start-up.
    bot = Bot(
        api_key="ApiKey_benchmark",
        base_url="http://127.0.0.1:9",
        signing_key="whsec_x",
        store=url,
        drain_timeout=0.5,
    )

    @bot.on_message()
    async def on_message(ctx: Any) -> None:
        nonlocal handled
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        if "name" not in ctx.state:
            ctx.state.update(_STATE)
        if block:
            await release.wait()
        handled += 1

    before = server.used()
    started = time.perf_counter()
    async with bot:
        for body in bodies:
            await bot.feed(parse_event(body), body)
        if not block:
            with anyio.fail_after(300):
                while handled < len(bodies):
                    await anyio.sleep(0.05)
        await anyio.sleep(settle)  # let the last saves and completions land
        after = server.used()
        seconds = time.perf_counter() - started
        release.set()
    return {
        "events": len(bodies),
        "before": before,
        "after": after,
        "bytes_per_event": (after - before) / len(bodies),
        "seconds": seconds,
        "handled": handled,
    }


async def measure(url: str, conversations: int) -> dict[str, Any]:
    """Run the three phases against an empty Redis at ``url``."""
    server = _Server(url)
    server.client.flushdb()
    n = conversations
    # A warm-up on other conversations: scripts loaded, structures created.
    await _run_phase(url, [event_body(i, "warm") for i in range(200)], block=False, server=server)
    first = await _run_phase(
        url, [event_body(i, "conv") for i in range(n)], block=False, server=server
    )
    second = await _run_phase(
        url,
        # The same conversations, new messages.
        [event_body(n + i, "conv", conversation=i) for i in range(n)],
        block=False,
        server=server,
    )
    keys = server.usage_by_kind()
    pending_bodies = [event_body(i, "pend", conversation=i // 10) for i in range(n)]
    third = await _run_phase(url, pending_bodies, block=True, server=server)
    body_size = sum(map(len, pending_bodies)) / len(pending_bodies)
    return {
        "conversations": n,
        "per_conversation": first["bytes_per_event"],
        "per_handled_event": second["bytes_per_event"],
        "state_per_idle_conversation": first["bytes_per_event"] - second["bytes_per_event"],
        "per_pending_event": third["bytes_per_event"],
        "pending_body_bytes": body_size,
        "keys_after_handled": keys,
        "phases": {"conversations": first, "handled": second, "pending": third},
    }


def event_body(n: int, prefix: str, conversation: int | None = None) -> bytes:
    """A distinct ``imessage.received`` body: its own envelope and message ids.

    Args:
        n: the event's number.
        prefix: names the phase; bodies of different phases never share an id.
        conversation: the conversation's number (``n`` when omitted); the same number and
            prefix give the same conversation.
    """
    data = json.loads(_template_body(n if conversation is None else conversation, prefix))
    data["id"] = f"evt_{prefix}{n:08d}"
    data["data"]["message"]["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{n}"))
    return json.dumps(data).encode()


def render(result: dict[str, Any]) -> str:
    """A few lines for a terminal."""
    lines = [
        f"Redis memory, {result['conversations']:,} conversations "
        f"(redis-server {result.get('redis_version', '?')}):",
        f"  per idle conversation, its one event's dedupe id included: "
        f"{result['per_conversation']:,.0f} B",
        f"  per handled event (its id kept for dedupe): {result['per_handled_event']:,.0f} B",
        f"  per idle conversation's state alone: {result['state_per_idle_conversation']:,.0f} B",
        f"  per pending event (body {result['pending_body_bytes']:,.0f} B): "
        f"{result['per_pending_event']:,.0f} B",
        "  keys after the handled phases (MEMORY USAGE, sampled):",
    ]
    for kind, data in result["keys_after_handled"].items():
        lines.append(f"    {kind:12s} {data['keys']:>8,} keys  {data['avg_bytes']:>8,.0f} B each")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.redis_memory``: print the table and one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_memory")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--url", help="a scratch Redis database to use (it is emptied)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imbot-redis-memory-") as tmp:
        server = None if args.url else RedisProc(pathlib.Path(tmp)).start()
        url = args.url or (server.url if server else "")
        try:
            result = anyio.run(measure, url, args.conversations)
            result["redis_version"] = _Server(url).client.info("server")["redis_version"]
        finally:
            if server is not None:
                server.stop()
    print(render(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
