"""``ctx.ask`` questions in Redis on a bad day: Redis down as a question opens, and an answer
that arrives as its question closes.

``SharedAskRegistry`` on a real ``redis-server``: one ``RedisLanes`` asks (it holds the
conversation's lease, as an asking handler does), another admits the answer, as another
process would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import structlog

from imbot.bot.asks import SharedAskRegistry
from imbot.errors import StoreUnavailable
from imbot.storage import open_inbox_store
from imbot.storage.redis_inbox import RedisInboxStore
from imbot.storage.redis_lanes import ANSWERED, Handout, RedisLanes
from imbot.testing.events import message_event, reaction_event

CONVERSATION = "conv-ask"
SENDER = "+15555550188"


def body(text: str) -> bytes:
    event = message_event(text, conversation_id=CONVERSATION, sender=SENDER)
    return json.dumps(event.to_wire()).encode()


@asynccontextmanager
async def asker_and_other(url: str) -> AsyncIterator[tuple[SharedAskRegistry, RedisLanes]]:
    """The asking process's registry (holding the conversation) and another process's lanes."""
    store = open_inbox_store(url)
    assert isinstance(store, RedisInboxStore)
    mine, other = RedisLanes(store), RedisLanes(store)
    try:
        assert isinstance(await mine.admit("k-start", body("start"), CONVERSATION, ""), Handout)
        registry = SharedAskRegistry(mine)
        async with anyio.create_task_group() as tg:
            registry.bind(tg)
            yield registry, other
            tg.cancel_scope.cancel()
    finally:
        await store.close()


async def test_a_question_opened_while_redis_is_down_registers_once_it_is_back(
    redis_server: Any,
) -> None:
    with anyio.fail_after(20), structlog.testing.capture_logs() as logs:
        async with asker_and_other(redis_server.url) as (registry, other):
            redis_server.stop()
            waiter = registry.open(CONVERSATION, SENDER)
            with anyio.move_on_after(0.5):
                await registry.registered(waiter)
                raise AssertionError("registered while Redis was down")
            redis_server.start()
            await registry.registered(waiter)  # the prompt may leave now
            assert await other.admit("k-answer", body("42"), CONVERSATION, SENDER) == ANSWERED
            outages: list[StoreUnavailable] = []
            requeued: list[bytes] = []

            async def requeue(raw: bytes) -> None:
                requeued.append(raw)

            async with anyio.create_task_group() as tg:
                tg.start_soon(registry.listen, requeue, outages.append)
                await waiter.answered.wait()
                tg.cancel_scope.cancel()
    assert waiter.message is not None and waiter.message.text == "42"
    assert requeued == []
    warnings = [e for e in logs if e["event"].startswith("ctx.ask cannot register")]
    assert len(warnings) == 1  # said once, however many retries


async def test_an_answer_that_comes_as_its_question_closes_becomes_a_message(
    redis_url: str,
) -> None:
    with anyio.fail_after(20):
        async with asker_and_other(redis_url) as (registry, other):
            waiter = registry.open(CONVERSATION, SENDER)
            await registry.registered(waiter)
            answer = body("too late?")
            assert await other.admit("k-late", answer, CONVERSATION, SENDER) == ANSWERED
            # The question times out before this process read the answer Redis gave it.
            registry.close(CONVERSATION, SENDER, waiter)
            requeued: list[bytes] = []
            done = anyio.Event()

            async def requeue(raw: bytes) -> None:
                requeued.append(raw)
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(registry.listen, requeue, lambda exc: None)
                await done.wait()
                tg.cancel_scope.cancel()
            assert not registry.listening  # nothing more is due
    assert waiter.message is None
    assert requeued == [answer]  # handled as an ordinary message: not lost


async def test_unreadable_and_non_message_answers_are_not_given_to_the_question(
    redis_url: str,
) -> None:
    tapback = reaction_event("like", conversation_id=CONVERSATION, sender=SENDER)
    with anyio.fail_after(20), structlog.testing.capture_logs() as logs:
        async with asker_and_other(redis_url) as (registry, _):
            first = registry.open(CONVERSATION, SENDER)
            assert registry.deliver(first.token, b"{not json") is True  # dropped, logged
            registry.close(CONVERSATION, SENDER, first)  # it timed out, in the end
            second = registry.open(CONVERSATION, SENDER)
            raw = json.dumps(tapback.to_wire()).encode()
            assert registry.deliver(second.token, raw) is False  # queued as it is
            registry.close(CONVERSATION, SENDER, second)
    assert first.message is None and second.message is None
    assert any(e["event"] == "dropping an unreadable ctx.ask answer" for e in logs)
