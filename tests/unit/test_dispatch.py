"""The dispatcher: per-conversation order, the concurrency bound, idle lanes, draining."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
import structlog

from imbot.bot.dispatch import Dispatcher
from imbot.errors import SetupError
from imbot.events import AnyEvent, MessageReceived, parse_event

_TEMPLATE = parse_event(
    b'{"id": "evt_0", "event_type": "imessage.received", "timestamp": "2026-06-09T14:30:59Z",'
    b' "data": {"message": {"id": "m", "conversation_id": "c", "direction": "inbound",'
    b' "content": "hi", "created_at": "2026-06-09T14:30:58Z",'
    b' "updated_at": "2026-06-09T14:30:58Z"}}}'
)
assert isinstance(_TEMPLATE, MessageReceived)


def make_event(event_id: str) -> AnyEvent:
    return _TEMPLATE.model_copy(update={"id": event_id})


@asynccontextmanager
async def running(
    handle: Callable[[AnyEvent], Awaitable[None]], *, max_concurrency: int = 64
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(handle, max_concurrency=max_concurrency)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        yield dispatcher
        await dispatcher.drain(timeout=10)


class Counter:
    """Counts handled events and wakes a waiter once a target is reached."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = anyio.Event()

    def tick(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


async def test_each_key_sees_its_events_in_submit_order() -> None:
    rng = random.Random(7)
    delays = {f"evt_{i}": rng.uniform(0, 0.003) for i in range(1000)}
    seen: dict[str, list[str]] = defaultdict(list)
    expected: dict[str, list[str]] = defaultdict(list)
    key_of: dict[str, str] = {}
    counter = Counter(1000)

    async def handle(event: AnyEvent) -> None:
        key = key_of[event.id]
        await anyio.sleep(delays[event.id])
        seen[key].append(event.id)
        counter.tick()

    with anyio.fail_after(20):
        async with running(handle, max_concurrency=16) as dispatcher:
            for i in range(1000):
                key = f"conv-{rng.randrange(50)}"
                expected[key].append(f"evt_{i}")
                key_of[f"evt_{i}"] = key
                dispatcher.submit(key, make_event(f"evt_{i}"))
                if i % 37 == 0:  # let some events finish while others are still arriving
                    await anyio.sleep(0)
            await counter.done.wait()
    assert counter.count == 1000
    assert seen == expected


async def test_concurrency_bound_is_respected_and_reached() -> None:
    in_flight = 0
    peak = 0
    counter = Counter(200)

    async def handle(event: AnyEvent) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.005)
        in_flight -= 1
        counter.tick()

    with anyio.fail_after(20):
        async with running(handle, max_concurrency=5) as dispatcher:
            for i in range(200):
                dispatcher.submit(f"conv-{i % 40}", make_event(f"evt_{i}"))
            assert dispatcher.in_flight <= 5
            await counter.done.wait()
    assert peak == 5


async def test_different_keys_run_concurrently() -> None:
    counter = Counter(50)

    async def handle(event: AnyEvent) -> None:
        await anyio.sleep(0.2)
        counter.tick()

    with anyio.fail_after(20):
        async with running(handle, max_concurrency=64) as dispatcher:
            started = time.perf_counter()
            for i in range(50):
                dispatcher.submit(f"conv-{i}", make_event(f"evt_{i}"))
            await counter.done.wait()
            elapsed = time.perf_counter() - started
    # Sequentially this would take 10 s.
    assert elapsed < 2.0


async def test_one_key_runs_sequentially() -> None:
    active = 0
    overlapped = False
    counter = Counter(20)

    async def handle(event: AnyEvent) -> None:
        nonlocal active, overlapped
        active += 1
        overlapped = overlapped or active > 1
        await anyio.sleep(0.001)
        active -= 1
        counter.tick()

    with anyio.fail_after(10):
        async with running(handle) as dispatcher:
            for i in range(20):
                dispatcher.submit("conv-1", make_event(f"evt_{i}"))
            await counter.done.wait()
    assert not overlapped


async def test_lanes_are_freed_when_idle() -> None:
    counter = Counter(300)
    gate = anyio.Event()

    async def handle(event: AnyEvent) -> None:
        await gate.wait()
        counter.tick()

    with anyio.fail_after(10):
        async with running(handle, max_concurrency=8) as dispatcher:
            for i in range(300):
                dispatcher.submit(f"conv-{i % 100}", make_event(f"evt_{i}"))
            assert dispatcher.lane_count == 100
            assert dispatcher.queued == 300
            gate.set()
            await counter.done.wait()
            assert dispatcher.lane_count == 0
            assert dispatcher.queued == 0
            assert dispatcher.in_flight == 0


async def test_a_busy_lane_does_not_starve_a_new_one() -> None:
    order: list[str] = []
    counter = Counter(101)

    async def handle(event: AnyEvent) -> None:
        order.append(event.id)
        await anyio.sleep(0)
        counter.tick()

    with anyio.fail_after(10):
        async with running(handle, max_concurrency=1) as dispatcher:
            for i in range(100):
                dispatcher.submit("busy", make_event(f"busy_{i}"))
            dispatcher.submit("quiet", make_event("quiet_0"))
            await counter.done.wait()
    assert order.index("quiet_0") <= 2
    assert [e for e in order if e.startswith("busy")] == [f"busy_{i}" for i in range(100)]


async def test_a_failing_handler_does_not_stop_its_lane_or_others() -> None:
    handled: list[str] = []
    counter = Counter(4)

    async def handle(event: AnyEvent) -> None:
        counter.tick()
        if event.id == "boom":
            raise ValueError("handler bug")
        handled.append(event.id)

    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with running(handle) as dispatcher:
            dispatcher.submit("a", make_event("boom"))
            dispatcher.submit("a", make_event("after"))
            dispatcher.submit("b", make_event("other"))
            dispatcher.submit("a", make_event("later"))
            await counter.done.wait()
    assert sorted(handled) == ["after", "later", "other"]
    assert handled.index("after") < handled.index("later")
    failures = [entry for entry in logs if entry["event"] == "dispatch.handler_failed"]
    assert len(failures) == 1
    assert failures[0]["event_id"] == "boom"
    assert failures[0]["conversation_id"] == "a"


async def test_drain_waits_for_running_and_queued_events() -> None:
    handled: list[str] = []
    dispatcher: Dispatcher

    async def handle(event: AnyEvent) -> None:
        await anyio.sleep(0.02)
        handled.append(event.id)

    with anyio.fail_after(10):
        dispatcher = Dispatcher(handle, max_concurrency=2)
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            for i in range(10):
                dispatcher.submit(f"conv-{i % 3}", make_event(f"evt_{i}"))
            assert await dispatcher.drain(timeout=5) is True
            assert not dispatcher.accepting
            with pytest.raises(SetupError, match="draining or stopped"):
                dispatcher.submit("conv-0", make_event("late"))
    assert sorted(handled) == sorted(f"evt_{i}" for i in range(10))
    assert dispatcher.abandoned == []
    assert dispatcher.lane_count == 0


async def test_drain_honours_its_timeout_and_reports_what_it_cancelled() -> None:
    started = anyio.Event()
    cancelled: list[str] = []

    async def handle(event: AnyEvent) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(event.id)
            raise

    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        dispatcher = Dispatcher(handle, max_concurrency=1)
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            dispatcher.submit("a", make_event("stuck"))
            dispatcher.submit("a", make_event("queued"))
            dispatcher.submit("b", make_event("waiting"))
            await started.wait()
            begun = time.perf_counter()
            assert await dispatcher.drain(timeout=0.2) is False
            elapsed = time.perf_counter() - begun
    assert 0.15 < elapsed < 2.0
    assert cancelled == ["stuck"]
    assert sorted(e.id for e in dispatcher.abandoned) == ["queued", "stuck", "waiting"]
    warnings = [entry for entry in logs if entry["event"] == "dispatch.drain_timeout"]
    assert len(warnings) == 1
    assert warnings[0]["abandoned"] == 3


async def test_run_returns_after_drain() -> None:
    async def handle(event: AnyEvent) -> None:
        return None

    dispatcher = Dispatcher(handle)
    returned = anyio.Event()

    async def run_and_mark(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        await dispatcher.run(task_status=task_status)
        returned.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(run_and_mark)
            dispatcher.submit("a", make_event("e"))
            assert await dispatcher.drain(timeout=5)
            assert returned.is_set()


async def test_misuse_raises_setup_error() -> None:
    async def handle(event: AnyEvent) -> None:
        return None

    with pytest.raises(SetupError, match="max_concurrency"):
        Dispatcher(handle, max_concurrency=0)
    dispatcher = Dispatcher(handle)
    with pytest.raises(SetupError, match=r"tg\.start"):
        dispatcher.submit("a", make_event("e"))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            await dispatcher.drain(timeout=1)
        with pytest.raises(SetupError, match="runs once"):
            await dispatcher.run()
    unused = Dispatcher(handle)
    assert await unused.drain(timeout=1) is True


async def test_cancelling_run_records_unfinished_events() -> None:
    started = anyio.Event()

    async def handle(event: AnyEvent) -> None:
        started.set()
        await anyio.sleep_forever()

    dispatcher = Dispatcher(handle, max_concurrency=1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            dispatcher.submit("a", make_event("running"))
            dispatcher.submit("b", make_event("queued"))
            await started.wait()
            tg.cancel_scope.cancel()
        # A drain after the fact reports the loss instead of claiming success.
        assert await dispatcher.drain(timeout=1) is False
    assert sorted(e.id for e in dispatcher.abandoned) == ["queued", "running"]
    assert not dispatcher.accepting


async def test_idle_conversations_cost_under_1_kib_each() -> None:
    conversations = 20_000
    keys = [f"conversation-{i:05d}-0e7d2c91-6a44-4b0e-8f3e" for i in range(conversations)]
    event = make_event("evt_shared")
    counter = Counter(conversations)

    async def handle(event: AnyEvent) -> None:
        counter.tick()

    with anyio.fail_after(60):
        dispatcher = Dispatcher(handle, max_concurrency=64)
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            # Warm up the worker pool so its fixed cost is in the baseline, not per conversation.
            counter = Counter(64)
            for i in range(64):
                dispatcher.submit(f"warm-{i}", event)
            await counter.done.wait()
            counter = Counter(conversations)
            gc.collect()
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                for key in keys:
                    dispatcher.submit(key, event)
                busy = tracemalloc.get_traced_memory()[0] - baseline
                await counter.done.wait()
                assert dispatcher.lane_count == 0
                gc.collect()
                idle = tracemalloc.get_traced_memory()[0] - baseline
            finally:
                tracemalloc.stop()
            await dispatcher.drain(timeout=5)
    per_conversation = idle / conversations
    print(f"busy: {busy / conversations:.0f} B/conversation, idle: {per_conversation:.1f} B")
    assert busy > 100 * conversations  # the lanes were really there while busy
    assert per_conversation <= 1024
