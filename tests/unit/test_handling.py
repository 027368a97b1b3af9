"""One event's fate: retried on transient API errors, dead-lettered, contained, timed out.

These run the bot without a network where they can (``run_events``, a client aimed at a
closed port) and against the real simulator where a reply must arrive.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from typing import Any

import anyio
import pytest
import structlog

from imbot import (
    Bot,
    ConnectError,
    Context,
    EventDeadLettered,
    HandlerRetry,
    HandlerTimeout,
    InkboxClient,
    MessageReceived,
)
from imbot.bot.inbox import event_key
from imbot.bot.retry import Backoff
from imbot.testing import eventually, message_event, offline_client, serving, simulated
from imbot.testing.events import CONVERSATION_ID

FAST = HandlerRetry(first_delay=0.02, max_delay=0.05, deadline=0.4)


def unreachable_client() -> InkboxClient:
    """A client whose every call fails at once with ``ConnectError`` (a closed port)."""
    return InkboxClient(api_key="ApiKey_unit", base_url="http://127.0.0.1:9", max_attempts=1)


async def test_outage_backoff_doubles_to_its_cap_and_starts_over_after_a_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[float] = []

    async def sleep(seconds: float) -> None:  # the pauses asked for, without waiting them
        asked.append(seconds)

    monkeypatch.setattr(anyio, "sleep", sleep)
    backoff = Backoff(0.1, 0.5)
    for _ in range(5):
        await backoff.pause()
    assert backoff.failures == 5
    backoff.reset()
    assert backoff.failures == 0
    await backoff.pause()
    expected = [0.1, 0.2, 0.4, 0.5, 0.5, 0.1]
    assert all(0.8 * e <= got <= 1.2 * e for got, e in zip(asked, expected, strict=True))


def test_retry_delays_grow_honour_retry_after_and_stay_capped() -> None:
    retry = HandlerRetry(first_delay=1, max_delay=10)
    assert 0.8 <= retry.delay(1) <= 1.2
    assert 3.2 <= retry.delay(3) <= 4.8
    assert retry.delay(30) == pytest.approx(10, rel=0.21) and retry.delay(30) <= 10
    assert retry.delay(1, retry_after=7) == 7
    assert retry.delay(1, retry_after=99) == 10
    with pytest.raises(ValueError, match="first_delay"):
        HandlerRetry(first_delay=0)
    with pytest.raises(ValueError, match="poison_after"):
        HandlerRetry(poison_after=0)


async def test_a_transient_failure_runs_the_handler_again_until_the_deadline() -> None:
    async with unreachable_client() as client:
        await _retried_until_the_deadline(Bot(client=client, handler_retry=FAST))


async def _retried_until_the_deadline(bot: Bot) -> None:
    tries: list[float] = []
    reported: list[BaseException] = []
    bot.add_error_listener(lambda ctx, exc: reported.append(exc))

    @bot.on_error(Exception)
    async def catch_all(ctx: Context[Any], exc: Exception) -> None:
        raise AssertionError("transient errors skip error handlers")

    @bot.on_message()
    async def reply(ctx: Context[MessageReceived]) -> None:
        tries.append(time.monotonic())
        ctx.state["tries"] = len(tries)  # never saved: the run failed
        await ctx.reply("hi")

    event = message_event("hello")
    with anyio.fail_after(10):
        async with bot:
            await bot.feed(event)
            await eventually(bot.dead_letters, lambda letters: len(letters) == 1, timeout=5)
            letters = await bot.dead_letters()
    assert len(tries) >= 3
    assert tries[-1] - tries[0] >= FAST.deadline * 0.9
    [letter] = letters
    assert (letter.event_id, letter.reason, letter.attempts) == (
        event_key(event),  # kept under the message it is about, not the envelope
        "deadline",
        len(tries),
    )
    assert "ConnectError" in letter.error
    [error] = reported
    assert isinstance(error, EventDeadLettered) and error.reason == "deadline"
    assert isinstance(error.__cause__, ConnectError)


async def test_a_dead_letter_can_be_replayed_once_the_api_answers(tmp_path: pathlib.Path) -> None:
    seen: list[str] = []
    async with simulated("replayer") as agent, unreachable_client() as unreachable:
        bot = Bot(
            client=unreachable,
            signing_key=agent.signing_key,
            inbox=f"sqlite:///{tmp_path}/bot.db",
            handler_retry=FAST,
        )

        @bot.on_message()
        async def reply(ctx: Context[MessageReceived]) -> None:
            seen.append(ctx.text)
            await ctx.reply(f"re: {ctx.text}")

        event = message_event("late")
        with anyio.fail_after(15):
            async with bot:
                await bot.feed(event)
                await eventually(bot.dead_letters, bool, timeout=5)
            # Offline, the dead letter is still in the file; a new bot replays it.
            bot2 = Bot(client=agent.client, inbox=f"sqlite:///{tmp_path}/bot.db")
            bot2.add_message_handler(reply)
            async with bot2:
                assert [d.event_id for d in await bot2.dead_letters()] == [event_key(event)]
                assert await bot2.replay_dead_letter(event.id)  # the envelope id works too
                assert not await bot2.replay_dead_letter(event.id)  # not a dead letter now
                await eventually(bot2.dead_letters, lambda letters: letters == [], timeout=5)
                await eventually(lambda: anyio.sleep(0.05), lambda _: len(seen) >= 4, timeout=5)
    assert seen[-1] == "late"


async def test_an_event_that_keeps_killing_the_process_becomes_a_poison_dead_letter(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    runs: list[int] = []
    reported: list[BaseException] = []
    event = message_event("explode")
    for run in range(4):
        # Each run's handler hangs; the shutdown drain cancels it, as a crash would end it.
        bot = Bot(
            client=offline_client(),
            inbox=url,
            drain_timeout=0.05,
            handler_retry=HandlerRetry(poison_after=3),
        )
        bot.add_error_listener(lambda ctx, exc: reported.append(exc))

        @bot.on_message()
        async def hang(ctx: Context[MessageReceived], run: int = run) -> None:
            runs.append(run)
            await anyio.sleep_forever()

        with anyio.fail_after(5):
            async with bot:
                if run == 0:
                    await bot.feed(event)
                await anyio.sleep(0.1)
                letters = await bot.dead_letters()
    assert runs == [0, 1, 2]  # the fourth start was refused
    [letter] = letters
    assert (letter.event_id, letter.reason, letter.attempts) == (event_key(event), "poison", 3)
    [error] = reported
    assert isinstance(error, EventDeadLettered) and error.reason == "poison"


async def _stray_cancellation() -> None:
    # A future cancelled elsewhere, as third-party SDKs leave behind.
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    await future


RAISERS: dict[str, Any] = {
    "cancelled": _stray_cancellation,
    "system-exit": lambda: (_ for _ in ()).throw(SystemExit(3)),
    "keyboard": lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
    "generator-exit": lambda: (_ for _ in ()).throw(GeneratorExit()),
    "exception": lambda: (_ for _ in ()).throw(RuntimeError("boom")),
}


@pytest.mark.parametrize("kind", list(RAISERS))
async def test_whatever_a_handler_raises_ends_that_event_only(kind: str) -> None:
    phone, other = "+15555550101", "+15555550102"
    reported: list[BaseException] = []
    async with simulated("sturdy") as agent:
        bot = Bot(client=agent.client, signing_key=agent.signing_key)
        bot.add_error_listener(lambda ctx, exc: reported.append(exc))

        @bot.on_message()
        async def answer(ctx: Context[MessageReceived]) -> None:
            if ctx.text.startswith("connect"):
                return
            if ctx.text == "raise":
                result = RAISERS[kind]()
                if asyncio.iscoroutine(result):
                    await result
            await ctx.reply(f"re: {ctx.text}")

        with anyio.fail_after(20):
            async with serving(agent, bot):
                for number in (phone, other):
                    await agent.connect(number)
                await agent.text(phone, "raise")
                await agent.text(phone, "same conversation")
                await agent.text(other, "other conversation")
                await eventually(
                    lambda: agent.agent_texts(phone), lambda t: t == ["re: same conversation"]
                )
                await eventually(
                    lambda: agent.agent_texts(other), lambda t: t == ["re: other conversation"]
                )
                assert bot.running and bot.health()["running"]
    expected = {
        "cancelled": asyncio.CancelledError,
        "system-exit": SystemExit,
        "keyboard": KeyboardInterrupt,
        "generator-exit": GeneratorExit,
        "exception": RuntimeError,
    }[kind]
    assert [type(e) for e in reported] == [expected]


async def test_system_exit_with_the_sqlite_inbox_is_not_replayed_after_a_restart(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    calls: list[str] = []
    for run in range(2):
        bot = Bot(client=offline_client(), inbox=url)
        bot.add_error_listener(lambda ctx, exc: None)

        @bot.on_message()
        async def leave(ctx: Context[MessageReceived]) -> None:
            calls.append(ctx.text)
            if ctx.text == "exit":
                raise SystemExit(1)

        with anyio.fail_after(5):
            async with bot:
                if run == 0:
                    await bot.feed(message_event("exit"))
                    await bot.feed(message_event("next"))
                await anyio.sleep(0.1)
    assert calls == ["exit", "next"]  # handled once each, nothing replayed on the restart


async def test_a_handler_past_its_time_limit_is_cancelled_and_reported() -> None:
    bot = Bot(client=offline_client(), handler_timeout=0.1)
    caught: list[BaseException] = []
    finished: list[str] = []

    @bot.on_error(HandlerTimeout)
    async def too_slow(ctx: Context[Any], exc: HandlerTimeout) -> None:
        caught.append(exc)

    @bot.on_message()
    async def slow(ctx: Context[MessageReceived]) -> None:
        if ctx.text == "slow":
            await anyio.sleep(5)
        finished.append(ctx.text)

    with anyio.fail_after(5):
        async with bot:
            await bot.feed(message_event("slow"))
            await bot.feed(message_event("quick"))
            await eventually(lambda: anyio.sleep(0.01), lambda _: finished == ["quick"])
    [error] = caught
    assert isinstance(error, HandlerTimeout) and error.timeout == 0.1
    assert "slow" in error.handler


async def test_a_handler_that_blocks_the_loop_is_named_in_a_warning() -> None:
    bot = Bot(client=offline_client())

    @bot.on_message()
    async def sleepy(ctx: Context[MessageReceived]) -> None:
        time.sleep(1.6)  # the mistake the warning is for

    with structlog.testing.capture_logs() as logs, anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("zzz", conversation_id=CONVERSATION_ID))
            await anyio.sleep(0.3)
    [warning] = [entry for entry in logs if "event loop is blocked" in entry["event"]]
    assert warning["handler"].endswith("sleepy")
    assert "time.sleep" in warning["where"] or "test_handling.py" in warning["where"]
    assert warning["blocked_for"] >= 1.0


async def test_healthz_answers_503_whenever_the_bot_cannot_take_events() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from imbot.bot.server import create_app

    running = {"running": True}

    async def receive(event: Any, raw: bytes) -> None:
        return None

    app = create_app(receive=receive, secrets=["whsec_x"], health=lambda: dict(running))
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        response = await http.get("/healthz")
        assert response.status == 200 and (await response.json())["status"] == "ok"
        running["running"] = False
        response = await http.get("/healthz")
        assert response.status == 503
        assert await response.json() == {"status": "unavailable", "running": False}
