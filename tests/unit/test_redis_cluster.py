"""Two bot runtimes in one test process sharing one real ``redis-server``: one bot.

Each bot serves its own webhook port; signed events are spread over both. What is checked
is what several processes promise together: an event runs once whichever process got it
(twice), a conversation's events run one at a time in the order they were accepted, state
has no lost update, a runtime that stops without releasing its leases is taken over, and a
``ctx.ask`` is answered through the other runtime.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from support.cluster import KEY, cluster_of, envelope, post, served

from imbot import Bot, Context, MessageReceived, StoreUnavailable
from imbot.testing import eventually
from imbot.testing.events import message_event, offline_client
from imbot.webhooks import sign


def recording_bot(url: str, name: str, seen: list[tuple[str, str, str]], **options: Any) -> Bot:
    bot = Bot(client=offline_client(), signing_key=KEY, store=url, drain_timeout=5, **options)

    @bot.on_message()
    async def record(ctx: Context[MessageReceived]) -> None:
        seen.append((name, ctx.conversation_id, ctx.text or ""))
        await anyio.sleep(random.uniform(0, 0.003))  # lets the other conversations interleave
        ctx.state["count"] = ctx.state.get("count", 0) + 1

    return bot


def snapshot(items: list[Any]) -> Callable[[], Any]:
    async def read() -> list[Any]:
        return list(items)

    return read


async def test_events_spread_over_two_runtimes_run_once_each_in_order(redis_url: str) -> None:
    seen: list[tuple[str, str, str]] = []
    a = recording_bot(redis_url, "a", seen)
    b = recording_bot(redis_url, "b", seen)
    conversations = [f"conv-{n}" for n in range(8)]
    bodies = [(c, n, envelope(c, f"{c}#{n}")) for n in range(12) for c in conversations]
    with anyio.fail_after(30):
        async with served(a) as port_a, served(b) as port_b, aiohttp.ClientSession() as http:
            # Each event goes to both runtimes (a redelivery to another process), in turn.
            for _, _, body in bodies:
                ports = [port_a, port_b]
                random.shuffle(ports)
                for port in ports:
                    assert await post(http, port, body) == 200
            await eventually(snapshot(seen), lambda s: len(s) >= len(bodies))
            await anyio.sleep(0.1)  # a double would show now
            counts = {c: await a.conversation_state(c) for c in conversations}
    assert len(seen) == len(bodies)
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for _, conversation, text in seen:
        by_conversation[conversation].append(text)
    for conversation in conversations:
        assert by_conversation[conversation] == [f"{conversation}#{n}" for n in range(12)]
        assert counts[conversation] == {"count": 12}
    assert {name for name, _, _ in seen} == {"a", "b"}  # both did work


@pytest.mark.parametrize("prefix", ["imbot"])
async def test_a_duplicate_is_dropped_by_the_other_runtime(redis_url: str, prefix: str) -> None:
    seen: list[tuple[str, str, str]] = []
    a = recording_bot(f"{redis_url}?prefix={prefix}", "a", seen)
    b = recording_bot(f"{redis_url}?prefix={prefix}", "b", seen)
    body = envelope("conv-dup", "once")
    with anyio.fail_after(15):
        async with served(a) as port_a, served(b) as port_b, aiohttp.ClientSession() as http:
            assert await post(http, port_a, body) == 200
            assert await post(http, port_b, body) == 200
            await eventually(snapshot(seen), lambda s: len(s) == 1)
            await anyio.sleep(0.1)
    assert [text for _, _, text in seen] == ["once"]


def drop_release(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the bot's shutdown leave its leases behind, as a process killed with -9 does."""

    async def keep_leases() -> None:
        return None

    monkeypatch.setattr(cluster_of(bot), "release", keep_leases)


async def test_a_runtime_gone_without_releasing_is_taken_over(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{redis_url}?lease=1"
    seen: list[tuple[str, str, str]] = []
    stuck = anyio.Event()
    a = Bot(client=offline_client(), signing_key=KEY, store=url, drain_timeout=0.1)

    @a.on_message()
    async def hang(ctx: Context[MessageReceived]) -> None:
        seen.append(("a", ctx.conversation_id, ctx.text or ""))
        stuck.set()
        await anyio.sleep_forever()  # the process dies mid-handler

    b = recording_bot(url, "b", seen)
    texts = [f"m{n}" for n in range(5)]
    with anyio.fail_after(20):
        async with served(b) as port_b, aiohttp.ClientSession() as http:
            async with served(a) as port_a:
                drop_release(a, monkeypatch)
                assert await post(http, port_a, envelope("conv-x", texts[0])) == 200
                await stuck.wait()
                for text in texts[1:]:  # queued behind a's lane, some through b
                    assert (
                        await post(http, random.choice([port_a, port_b]), envelope("conv-x", text))
                        == 200
                    )
                await anyio.sleep(0.2)
                assert [s for s in seen if s[0] == "b"] == []  # a holds the lane
            gone = anyio.current_time()
            await eventually(snapshot(seen), lambda s: len(s) == 1 + len(texts), timeout=10)
            taken_after = anyio.current_time() - gone
    # b re-ran the event a died in (at least once), then the rest, in order.
    assert [text for name, _, text in seen if name == "b"] == texts
    assert taken_after < 1 + 1.0  # within the lease and a takeover tick
    assert await b_state_after(url, "conv-x") == {"count": 5}


async def b_state_after(url: str, conversation: str) -> dict[str, Any]:
    bot = Bot(client=offline_client(), store=url)
    async with bot:
        return await bot.conversation_state(conversation)


async def test_an_event_that_kills_its_process_becomes_a_shared_dead_letter(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{redis_url}?lease=0.5"
    from imbot.bot.retry import HandlerRetry

    stuck = anyio.Event()
    a = Bot(client=offline_client(), signing_key=KEY, store=url, drain_timeout=0.05)

    @a.on_message()
    async def hang(ctx: Context[MessageReceived]) -> None:
        stuck.set()
        await anyio.sleep_forever()

    seen: list[tuple[str, str, str]] = []
    b = recording_bot(url, "b", seen, handler_retry=HandlerRetry(poison_after=1))
    with anyio.fail_after(15):
        async with served(a) as port_a, aiohttp.ClientSession() as http:
            drop_release(a, monkeypatch)
            assert await post(http, port_a, envelope("conv-p", "poison")) == 200
            await stuck.wait()
        async with served(b) as port_b, aiohttp.ClientSession() as http:
            letters: Any = await eventually(b.dead_letters, lambda d: len(d) == 1, timeout=5)
            assert await post(http, port_b, envelope("conv-p", "after")) == 200
            await eventually(snapshot(seen), lambda s: len(s) == 1)
            assert [text for _, _, text in seen] == ["after"]  # the poison event never ran again
            assert await b.replay_dead_letter(letters[0].event_id)  # shared: b replays a's
            await eventually(snapshot(seen), lambda s: len(s) == 2, timeout=5)
            assert await b.dead_letters() == []
    assert letters[0].reason == "poison"
    assert [text for _, _, text in seen] == ["after", "poison"]


async def test_ctx_ask_is_answered_through_the_other_runtime(redis_url: str) -> None:
    answers: list[str] = []
    a = Bot(client=offline_client(), signing_key=KEY, store=redis_url)

    @a.on_message()
    async def ask(ctx: Context[MessageReceived]) -> None:
        if ctx.text == "start":
            answer = await ctx.ask(timeout=10)
            answers.append(f"a:{answer.content}")
        else:
            answers.append(f"a-plain:{ctx.text}")

    b = Bot(client=offline_client(), signing_key=KEY, store=redis_url)

    @b.on_message()
    async def plain(ctx: Context[MessageReceived]) -> None:
        answers.append(f"b-plain:{ctx.text}")

    with anyio.fail_after(15):
        async with served(a) as port_a, served(b) as port_b, aiohttp.ClientSession() as http:
            assert await post(http, port_a, envelope("conv-q", "start")) == 200
            await eventually(lambda: _open_asks(a), lambda n: n == 1)
            # At once: the question reached Redis in the same write as it opened.
            assert await post(http, port_b, envelope("conv-q", "Ada")) == 200
            await eventually(snapshot(answers), lambda s: len(s) == 1)
            assert await post(http, port_b, envelope("conv-q", "later")) == 200
            await eventually(snapshot(answers), lambda s: len(s) == 2)
    assert answers[0] == "a:Ada"
    assert answers[1] in ("a-plain:later", "b-plain:later")


async def test_an_answer_outlives_the_asker_and_the_takeover_uses_it(redis_url: str) -> None:
    got: list[str] = []
    answered = anyio.Event()

    def asking_bot(name: str, *, hang: bool) -> Bot:
        bot = Bot(
            client=offline_client(),
            signing_key=KEY,
            store=f"{redis_url}?lease=1",
            drain_timeout=0.05,
        )

        @bot.on_message()
        async def ask(ctx: Context[MessageReceived]) -> None:
            answer = await ctx.ask(timeout=10)
            got.append(f"{name}:{answer.content}")
            if hang:  # it dies before its event is done: the stop cancels it
                answered.set()
                await anyio.sleep_forever()

        return bot

    a, b = asking_bot("a", hang=True), asking_bot("b", hang=False)
    with anyio.fail_after(15):
        async with served(b), aiohttp.ClientSession() as http:
            async with served(a) as port_a:
                assert await post(http, port_a, envelope("conv-k", "start")) == 200
                await eventually(lambda: _open_asks(a), lambda n: n == 1)
                assert await post(http, port_a, envelope("conv-k", "Ada")) == 200
                await answered.wait()
            # a stopped and handed the conversation over: b runs "start" again, and its
            # question gets the answer a got, with nothing more from the human.
            await eventually(snapshot(got), lambda g: len(g) == 2)
            assert (
                await cluster_of(b).lanes.store.scripts.call("KEYS", "imbot:st:imbot.ask:*") == []
            )  # dropped once "start" was done
    assert got == ["a:Ada", "b:Ada"]


async def _open_asks(bot: Bot) -> int:
    return int(bot.health()["asks"])


async def test_webhooks_get_503_while_redis_is_down_and_all_recovers(
    redis_server: Any, redis_url: str
) -> None:
    seen: list[tuple[str, str, str]] = []
    a = recording_bot(f"{redis_url}?lease=1", "a", seen)
    with anyio.fail_after(30):
        async with served(a) as port, aiohttp.ClientSession() as http:
            assert await post(http, port, envelope("conv-r", "before")) == 200
            await eventually(snapshot(seen), lambda s: len(s) == 1)
            await eventually(lambda: _leased(a), lambda n: n == 0)  # done and completed
            redis_server.stop()
            body = envelope("conv-r", "during")
            headers = {**sign(body, KEY), "Content-Type": "application/json"}
            async with http.post(
                f"http://127.0.0.1:{port}/webhook", data=body, headers=headers
            ) as r:
                assert r.status == 503
                assert int(r.headers["Retry-After"]) >= 1
            await eventually(lambda: _store_health(a), lambda h: h == "unavailable", timeout=5)
            redis_server.start()
            # Inkbox's redelivery, until it is taken (a failed connection is not tried
            # again for a moment).
            await eventually(lambda: post(http, port, body), lambda status: status == 200)
            assert await post(http, port, envelope("conv-r", "after")) == 200
            await eventually(snapshot(seen), lambda s: len(s) == 3, timeout=10)
            await eventually(lambda: _store_health(a), lambda h: h == "ok", timeout=5)
            state = await a.conversation_state("conv-r")
    assert [text for _, _, text in seen] == ["before", "during", "after"]
    assert state == {"count": 3}


async def _leased(bot: Bot) -> int:
    return int(bot.health()["leased"])


async def _store_health(bot: Bot) -> str:
    return str(bot.health()["store"])


@pytest.mark.parametrize("reads_redis", [False, True], ids=["completing", "mid-handler"])
async def test_a_lane_caught_by_an_outage_goes_on_once_redis_is_back(
    redis_server: Any, redis_url: str, reads_redis: bool
) -> None:
    runs: list[str] = []
    gate = anyio.Event()
    a = Bot(client=offline_client(), signing_key=KEY, store=redis_url)

    @a.on_message()
    async def count(ctx: Context[MessageReceived]) -> None:
        runs.append(ctx.text or "")
        if ctx.text == "slow" and len(runs) == 1:
            await gate.wait()  # Redis goes away meanwhile
            if reads_redis:
                await ctx.bot.conversation_state("elsewhere")  # fails: StoreUnavailable
        ctx.state["count"] = ctx.state.get("count", 0) + 1

    with anyio.fail_after(30):
        async with served(a) as port, aiohttp.ClientSession() as http:
            assert await post(http, port, envelope("conv-o", "slow")) == 200
            assert await post(http, port, envelope("conv-o", "next")) == 200
            await eventually(snapshot(runs), lambda r: r == ["slow"])
            redis_server.stop()
            gate.set()  # its outcome cannot be written: the lane waits for Redis
            await anyio.sleep(1.0)
            assert runs == ["slow"]
            redis_server.start()
            expected = ["slow", "slow", "next"] if reads_redis else ["slow", "next"]
            await eventually(snapshot(runs), lambda r: r == expected, timeout=10)
            await eventually(lambda: _leased(a), lambda n: n == 0)
            state = await a.conversation_state("conv-o")
    # A run whose outcome was written (state and completion in one script) is not repeated;
    # one that failed runs again, and its first try changed nothing.
    assert state == {"count": 2}


async def test_a_state_changed_elsewhere_mid_handler_reruns_the_event_on_the_new_state(
    redis_url: str,
) -> None:
    from imbot.bot.retry import HandlerRetry
    from imbot.storage import open_state_store

    other = open_state_store(redis_url)  # another process, writing the same conversation
    attempts: list[int] = []
    bot = Bot(
        client=offline_client(),
        store=redis_url,
        handler_retry=HandlerRetry(first_delay=0.05, max_delay=0.1),
    )

    @bot.on_message()
    async def count(ctx: Context[MessageReceived]) -> None:
        seen = ctx.state.get("n", 0)
        attempts.append(seen)
        if len(attempts) == 1:
            await other.save(ctx.conversation_id, {"n": 100, "other": True})
        ctx.state["n"] = seen + 1

    try:
        with anyio.fail_after(15):
            async with bot:
                event = message_event("hi", conversation_id="conv-s")
                await bot.feed(event, json.dumps(event.to_wire()).encode())
                await eventually(snapshot(attempts), lambda a: len(a) == 2)
                await eventually(lambda: _leased(bot), lambda n: n == 0)
                state = await bot.conversation_state("conv-s")
    finally:
        await other.close()
    assert attempts == [0, 100]  # the second run saw the other process's save
    assert state == {"n": 101, "other": True}  # nothing lost


@pytest.mark.slow
async def test_a_redis_restart_leaves_each_lane_with_its_holder(
    redis_server: Any, redis_url: str
) -> None:
    # A lease of 2 s: after the restart, Redis refuses takeovers for one lease, and a
    # loaded machine may take a second to start the server and call take_over below.
    url = f"{redis_url}?lease=2"
    seen: list[tuple[str, str, str]] = []
    gate = anyio.Event()
    a = Bot(client=offline_client(), signing_key=KEY, store=url)

    @a.on_message()
    async def slow(ctx: Context[MessageReceived]) -> None:
        seen.append(("a", ctx.conversation_id, ctx.text or ""))
        await gate.wait()

    b = recording_bot(url, "b", seen)
    with anyio.fail_after(30):
        async with served(a) as port_a, served(b), aiohttp.ClientSession() as http:
            assert await post(http, port_a, envelope("conv-h", "long")) == 200
            await eventually(snapshot(seen), lambda s: len(s) == 1)
            redis_server.stop()
            await anyio.sleep(2.5)  # longer than the lease: every lease lapses meanwhile
            redis_server.start()
            assert await _take_over_once_reachable(b) == 0  # a has not renewed yet
            await anyio.sleep(2.5)  # b's takeover ticks; a has taken its lease back
            gate.set()
            await eventually(lambda: _leased(a), lambda n: n == 0, timeout=10)
    assert seen == [("a", "conv-h", "long")]  # b never ran a's event


async def _take_over_once_reachable(bot: Bot) -> int:
    # start() blocked the loop, so b's last refused connection may be a moment old: the
    # client does not dial again for 0.1 s after a refusal, and says StoreUnavailable.
    with anyio.fail_after(1):
        while True:
            try:
                return await cluster_of(bot).take_over()
            except StoreUnavailable:
                await anyio.sleep(0.02)


async def test_redis_down_from_the_start_is_never_reported_back(redis_server: Any) -> None:
    # A process holding no lane renews nothing: that proves nothing about Redis, and must
    # not log "reachable again" every renewal while the server never came up.
    redis_server.stop()
    bot = recording_bot(f"{redis_server.url}?lease=0.6", "a", [])
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with served(bot):
            await eventually(lambda: _store_health(bot), lambda h: h == "unavailable")
            await anyio.sleep(1.0)  # several renewals (every lease/3)
            assert bot.health()["store"] == "unavailable"
    events = [entry["event"] for entry in logs]
    assert "Redis is reachable again; lanes go on" not in events
    assert events.count("Redis is unreachable; lanes wait and retry") == 1
