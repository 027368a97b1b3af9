"""The Redis engine on its own: URLs, the missing extra, the fallback client, the lanes' queue.

Against a real ``redis-server`` (the ``redis_url`` fixture).
"""

from __future__ import annotations

import builtins
import json
from typing import Any

import anyio
import pytest

from imbot import Bot, Context, MessageReceived
from imbot.bot.cluster import Cluster
from imbot.config import resolve_store
from imbot.errors import ConfigError, StoreUnavailable
from imbot.storage import open_inbox_store, open_state_store, parse_storage_url, redis_wire
from imbot.storage.redis_conn import RedisTarget
from imbot.storage.redis_inbox import RedisInboxStore
from imbot.storage.redis_lanes import DUPLICATE, QUEUED, Handout, RedisLanes
from imbot.testing import eventually
from imbot.testing.events import message_event, offline_client


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", ("redis://127.0.0.1:6379/0", "imbot", 5.0)),
        (
            "rediss://:pw@cache:6380/2?prefix=shop&lease=1.5",
            ("rediss://:pw@cache:6380/2", "shop", 1.5),
        ),
        ("redis://localhost?lease=30", ("redis://localhost", "imbot", 30.0)),
    ],
)
def test_redis_urls(url: str, expected: tuple[str, str, float]) -> None:
    parsed = parse_storage_url(url)
    assert parsed.scheme == "redis" and parsed.redis is not None
    assert (parsed.redis.url, parsed.redis.prefix, parsed.redis.lease) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://h/0?lease=0", "between 0.5 and 3600"),
        ("redis://h/0?lease=soon", "between 0.5 and 3600"),
        ("redis://h/0?prefix=", "unknown option"),
        ("redis://h/0?db=3", "prefix=NAME"),
        ("redis:///0", "names no host"),
    ],
)
def test_bad_redis_urls_say_what_is_wrong(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_storage_url(url)


def test_the_password_stays_out_of_messages() -> None:
    target = RedisTarget("redis://:s3cret@cache:6380/2")
    assert target.display == "redis://cache:6380/2"


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_redis(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "redis" or name.startswith("redis."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_redis)
    monkeypatch.setattr("importlib.import_module", no_redis)
    with pytest.raises(ConfigError, match=r"pip install 'imbot-kit\[redis\]'"):
        open_inbox_store("redis://127.0.0.1:6379/0")


def test_imbot_store_names_the_store_unless_the_code_does() -> None:
    env = {"IMBOT_STORE": " redis://127.0.0.1:6379/0 "}
    assert resolve_store(None, env=env) == "redis://127.0.0.1:6379/0"
    assert resolve_store("sqlite:///bot.db", env=env) == "sqlite:///bot.db"
    assert resolve_store(None, env={"IMBOT_STORE": " "}) is None


async def test_a_bot_takes_its_store_from_imbot_store(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMBOT_STORE", redis_url)
    bot = Bot(client=offline_client())
    async with bot:
        runtime = bot._runtime
        assert runtime is not None
        assert runtime.inbox.shared and isinstance(runtime.inbox.store, RedisInboxStore)
        assert runtime.cluster is not None
    memory = Bot(client=offline_client(), inbox="memory://", state="memory://")
    async with memory:
        assert memory._runtime is not None and memory._runtime.cluster is None


async def test_the_engine_works_without_hiredis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_wire, "_has_hiredis", lambda: False)
    store = open_inbox_store(redis_url)
    state = open_state_store(redis_url)
    try:
        assert isinstance(store, RedisInboxStore) and store.scripts.wire is None
        assert await store.add("k1", b"one")
        assert not await store.add("k1", b"one")
        await state.save("c1", {"n": 1})
        assert await state.load("c1") == {"n": 1}
    finally:
        await store.close()
        await state.close()


async def test_an_unreachable_server_is_store_unavailable(redis_server: Any) -> None:
    store = open_inbox_store(redis_server.url)
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.add("k1", b"one")
        with pytest.raises(StoreUnavailable):
            await store.pending()
    finally:
        redis_server.start()
        await store.close()


async def test_admission_dedupes_queues_and_leases(redis_url: str) -> None:
    store = open_inbox_store(redis_url)
    assert isinstance(store, RedisInboxStore)
    one, two = RedisLanes(store), RedisLanes(store)
    try:
        first = await one.admit("k1", b"r1", "c1", "")
        assert isinstance(first, Handout) and (first.key, first.raw, first.resumed) == (
            "k1",
            None,
            False,
        )
        assert await two.admit("k1", b"r1", "c1", "") == DUPLICATE
        assert await two.admit("k2", b"r2", "c1", "") == QUEUED  # one holds the lane
        after = await one.advance("c1", ["k1"], release=False)
        assert isinstance(after, Handout) and (after.key, after.raw) == ("k2", b"r2")
        assert await one.advance("c1", ["k2"], release=False) == 2  # released: queue empty
        third = await two.admit("k3", b"r3", "c1", "")
        assert isinstance(third, Handout) and third.key == "k3"  # the lane is free again
        assert [p.event_id for p in await store.pending()] == ["k3"]
    finally:
        await store.close()


async def test_a_turn_reads_and_takes_the_queue_behind_its_event(redis_url: str) -> None:
    bot = Bot(client=offline_client(), store=redis_url)
    seen: list[str] = []
    gate = anyio.Event()
    looked: dict[str, Any] = {}

    @bot.on_message()
    async def handle(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.text or "")
        if ctx.text != "first":
            return
        await gate.wait()
        queues = cluster.queues
        looked["peek"] = [e.message.content for e in await queues.peek(ctx.conversation_id, 5)]
        taken = await queues.take(ctx.conversation_id)
        assert taken is not None
        looked["taken"] = taken.message.content
        looked["waited"] = await queues.wait(ctx.conversation_id, 0.2, beyond=1)
        await cluster.inbox.complete(f"imessage.received:{taken.message.id}")

    async with bot:
        assert bot._runtime is not None and bot._runtime.cluster is not None
        cluster: Cluster = bot._runtime.cluster
        for text in ("first", "second", "third"):
            event = message_event(text, conversation_id="conv-t")
            await bot.feed(event, json.dumps(event.to_wire()).encode())
        gate.set()
        await eventually(lambda: _copy(seen), lambda s: len(s) == 2)
        await anyio.sleep(0.1)
    assert looked == {"peek": ["second", "third"], "taken": "second", "waited": False}
    assert seen == ["first", "third"]  # the taken one was completed with the turn


async def _copy(items: list[str]) -> list[str]:
    return list(items)


async def test_an_events_state_lands_with_its_completion_or_not_at_all(redis_url: str) -> None:
    store = open_inbox_store(redis_url)
    state = open_state_store(redis_url)
    assert isinstance(store, RedisInboxStore)
    lanes = RedisLanes(store, want_state=True)
    try:
        first = await lanes.admit("k1", b"r1", "c1", "")
        assert isinstance(first, Handout) and (first.state, first.version) == (None, None)
        assert await lanes.advance("c1", ["k1"], release=False, state=('{"n":1}', 0)) == 2
        assert await state.load("c1") == {"n": 1}
        second = await lanes.admit("k2", b"r2", "c1", "")
        assert isinstance(second, Handout) and int(second.version) == 1
        await state.save("c1", {"n": 7})  # someone else saved meanwhile (version 2)
        again = await lanes.advance("c1", ["k2"], release=False, state=('{"n":2}', 1))
        assert isinstance(again, Handout) and again.conflict and again.key == "k2"
        assert again.resumed  # the same event, handed out again
        assert int(again.version) == 2 and json.loads(again.state) == {"n": 7}
        assert await state.load("c1") == {"n": 7}  # the stale change was not saved...
        assert [p.event_id for p in await store.pending()] == ["k2"]  # ...nor k2 completed
        assert await lanes.advance("c1", ["k2"], release=False, state=('{"n":8}', 2)) == 2
        assert await state.load("c1") == {"n": 8}
        assert await store.pending() == []
    finally:
        await store.close()
        await state.close()
