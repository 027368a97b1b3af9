"""The Bot: settings at start, lifecycle, feed, resume, state, lifespan, help, the web app."""

from __future__ import annotations

import io
import json
import pathlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web

from imbot import Bot, Context, MessageReceived, Router, Text
from imbot.errors import ConfigError, SetupError
from imbot.log import configure_logging, debug_enabled, set_debug
from imbot.storage.memory import MemoryStateStore
from imbot.testing.events import CONVERSATION_ID as CONVO
from imbot.testing.events import message_event, offline_client, run_events
from imbot.webhooks import sign

# --------------------------------------------------------------------------- settings


async def test_a_missing_api_key_is_a_config_error_at_start_not_at_construction() -> None:
    bot = Bot()  # nothing is read here

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None: ...

    with pytest.raises(ConfigError, match="INKBOX_API_KEY"):
        async with bot:
            pass
    assert not bot.running


async def test_settings_come_from_the_environment_when_the_bot_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot()
    monkeypatch.setenv("INKBOX_API_KEY", "ApiKey_env")
    monkeypatch.setenv("INKBOX_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("IMBOT_HANDLE", "helper")
    monkeypatch.setenv("IMBOT_SIGNING_KEY", " whsec_new , whsec_old ,")
    assert bot.signing_keys() == ("whsec_new", "whsec_old")
    assert bot.handle == "helper"
    with anyio.fail_after(5):
        async with bot:
            assert bot.client.base_url == "http://127.0.0.1:9"
            assert bot.running
    assert not bot.running


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMBOT_SIGNING_KEY", "whsec_env")
    monkeypatch.setenv("IMBOT_HANDLE", "env")
    bot = Bot("arg", signing_key=["whsec_a", "whsec_b"])
    assert bot.signing_keys() == ("whsec_a", "whsec_b")
    assert bot.handle == "arg"
    assert Bot(signing_key="whsec_1,whsec_2").signing_keys() == ("whsec_1", "whsec_2")


async def test_serving_without_a_signing_key_names_the_variable() -> None:
    bot = Bot(client=offline_client())
    with pytest.raises(ConfigError, match="IMBOT_SIGNING_KEY"):
        await bot.serve(port=0)
    with pytest.raises(ConfigError, match="signing key"):
        _ = bot.app


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"command_prefixes": "/"}, "non-empty sequence"),
        ({"command_prefixes": ()}, "non-empty sequence"),
        ({"command_prefixes": (" ",)}, "without spaces"),
        ({"max_concurrency": 0}, "at least 1"),
        ({"typing_interval": 0}, "typing_interval"),
        ({"lifespan": "nope"}, "lifespan must be a function"),
    ],
)
def test_invalid_arguments_fail_at_construction(options: dict[str, Any], words: str) -> None:
    with pytest.raises(SetupError, match=words):
        Bot(**options)


def test_the_client_exists_once_started() -> None:
    with pytest.raises(SetupError, match="exists once the bot has started"):
        _ = Bot().client
    client = offline_client()
    assert Bot(client=client).client is client


# --------------------------------------------------------------------------- lifecycle & feed


async def test_feed_needs_a_running_bot() -> None:
    bot = Bot(client=offline_client())
    with pytest.raises(SetupError, match="not running"):
        await bot.feed(message_event())
    await run_events(bot)
    with pytest.raises(SetupError, match="not running"):
        await bot.feed(message_event())


async def test_duplicates_are_dropped_by_event_id() -> None:
    bot = Bot(client=offline_client())
    calls: list[str] = []

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        calls.append(ctx.event.id)

    event = message_event("x", event_id="evt_same")
    assert await run_events(bot, event, event, message_event("x", event_id="evt_same")) == [
        True,
        False,
        False,
    ]
    assert calls == ["evt_same"]


async def test_the_bot_can_run_twice_and_is_not_reentrant() -> None:
    bot = Bot(client=offline_client())
    await run_events(bot)
    with anyio.fail_after(5):
        async with bot:
            with pytest.raises(SetupError, match="already running"):
                await bot.__aenter__()
    await run_events(bot)


async def test_an_exception_in_the_block_propagates_unchanged() -> None:
    bot = Bot(client=offline_client())
    with anyio.fail_after(5), pytest.raises(KeyError):
        async with bot:
            raise KeyError("mine")


async def test_leaving_the_block_drains_running_handlers() -> None:
    bot = Bot(client=offline_client(), drain_timeout=5)
    done: list[str] = []

    @bot.on_message()
    async def slow(ctx: Context[MessageReceived]) -> None:
        await anyio.sleep(0.2)
        done.append(ctx.text)

    await run_events(bot, message_event("a"), message_event("b", conversation_id="c2"))
    assert sorted(done) == ["a", "b"]


async def test_handlers_past_the_drain_timeout_are_cancelled() -> None:
    bot = Bot(client=offline_client(), drain_timeout=0.1)
    started = anyio.Event()

    @bot.on_message()
    async def stuck(ctx: Context[MessageReceived]) -> None:
        started.set()
        await anyio.sleep_forever()

    with anyio.fail_after(5), structlog.testing.capture_logs() as logs:
        async with bot:
            await bot.feed(message_event())
            await started.wait()
    assert any(e["event"] == "shutdown: handlers still running were cancelled" for e in logs)


async def test_ask_answers_are_taken_in_feed_before_the_busy_lane() -> None:
    bot = Bot(client=offline_client())
    got: list[str] = []
    asking = anyio.Event()

    @bot.command("quiz")
    async def quiz(ctx: Context[MessageReceived]) -> None:
        asking.set()
        answer = await ctx.ask(timeout=5)  # no prompt: nothing is sent
        got.append(f"answer:{answer.text}")

    @bot.on_message()
    async def other(ctx: Context[MessageReceived]) -> None:
        got.append(f"other:{ctx.text}")

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("quiz"))
            await asking.wait()
            await bot.feed(message_event("from someone else", sender="+15555550177"))
            await bot.feed(message_event("42"))
            await bot.feed(message_event("after"))
    # The other sender's message waited in the lane behind the asking handler.
    assert got == ["answer:42", "other:from someone else", "other:after"]


async def test_durable_inbox_resumes_events_accepted_before_a_crash(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    first = Bot(client=offline_client(), inbox=url, drain_timeout=0.05)
    started = anyio.Event()

    @first.on_message()
    async def stuck(ctx: Context[MessageReceived]) -> None:
        started.set()
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with first:
            await first.feed(message_event("lost?", event_id="evt_resume"))
            await started.wait()

    second = Bot(client=offline_client(), inbox=url)
    resumed: list[str] = []

    @second.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        resumed.append(f"{ctx.event.id}:{ctx.text}")

    with anyio.fail_after(10):
        async with second:
            assert not await second.feed(message_event("dup", event_id="evt_resume"))
    assert resumed == ["evt_resume:lost?"]
    third = Bot(client=offline_client(), inbox=url)
    third.add_message_handler(handler)
    await run_events(third)
    assert resumed == ["evt_resume:lost?"]  # completed: not resumed again


async def test_state_is_per_conversation_and_persists_in_sqlite(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    seen: list[Any] = []

    def make() -> Bot:
        bot = Bot(client=offline_client(), state=url)

        @bot.on_message()
        async def count(ctx: Context[MessageReceived]) -> None:
            ctx.state["count"] = ctx.state.get("count", 0) + 1
            seen.append((ctx.conversation_id, ctx.state["count"]))

        return bot

    await run_events(make(), message_event("a", conversation_id="c1"), message_event("b"))
    await run_events(make(), message_event("c", conversation_id="c1"))
    assert seen[0] == ("c1", 1) and seen[2] == ("c1", 2)


class _CountingStore:
    """A state store that can only load by awaiting (as a network store would)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.loads = 0
        self.closed = False

    async def load(self, conversation_id: str) -> dict[str, Any] | None:
        self.loads += 1
        found = self.data.get(conversation_id)
        return None if found is None else dict(found)

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        self.data[conversation_id] = dict(data)

    async def delete(self, conversation_id: str) -> None:
        self.data.pop(conversation_id, None)

    async def close(self) -> None:
        self.closed = True


class _CountingInstantStore(_CountingStore):
    """The same, able to load without awaiting: ``ctx.state`` then loads on first use."""

    def load_nowait(self, conversation_id: str) -> dict[str, Any] | None:
        self.loads += 1
        found = self.data.get(conversation_id)
        return None if found is None else dict(found)


async def test_state_is_loaded_only_by_handlers_that_touch_it() -> None:
    store = _CountingInstantStore()
    store.data["c1"] = {"count": 41}
    bot = Bot(client=offline_client(), state=store)
    seen: list[Any] = []

    @bot.on_message(Text("count"))
    async def count(ctx: Context[MessageReceived]) -> None:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        seen.append(ctx.state["count"])

    @bot.on_message()
    async def ignore_state(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.text)

    await run_events(
        bot,
        message_event("hello", conversation_id="c1"),
        message_event("again", conversation_id="c1"),
    )
    assert store.loads == 0  # neither handler read ctx.state
    await run_events(bot, message_event("count", conversation_id="c1"))
    assert store.loads == 1
    assert seen == ["hello", "again", 42] and store.data["c1"] == {"count": 42}


async def test_a_store_that_must_await_is_loaded_before_filters_and_saved_after() -> None:
    store = _CountingStore()
    bot = Bot(client=offline_client(), state=store)
    seen: list[str] = []

    def in_signup(ctx: Context[Any]) -> bool:
        return bool(ctx.state.get("asked"))

    @bot.on_message(in_signup)
    async def name(ctx: Context[MessageReceived]) -> None:
        ctx.state.clear()
        seen.append(f"name:{ctx.text}")

    @bot.on_message()
    async def start(ctx: Context[MessageReceived]) -> None:
        ctx.state["asked"] = True
        seen.append("start")

    await run_events(bot, message_event("hi"), message_event("Ada"), message_event("again"))
    assert seen == ["start", "name:Ada", "start"]
    assert store.loads == 3  # once per event, before the first filter
    assert store.data == {CONVO: {"asked": True}}


async def test_state_read_first_in_middleware_is_the_same_one_the_handler_sees() -> None:
    store = _CountingInstantStore()
    bot = Bot(client=offline_client(), state=store)
    seen: list[Any] = []

    @bot.middleware
    async def mark(ctx: Context[Any], call_next: Any) -> None:
        ctx.state["seen_by_middleware"] = True
        await call_next(ctx)

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        seen.append(dict(ctx.state))

    await run_events(bot, message_event("x", conversation_id="c9"))
    assert seen == [{"seen_by_middleware": True}]
    assert store.loads == 1 and store.data["c9"] == {"seen_by_middleware": True}


# --------------------------------------------------------------------------- lifespan & hooks


async def test_lifespan_yields_into_bot_state_and_exits_after_the_drain() -> None:
    order: list[str] = []

    @asynccontextmanager
    async def lifespan(bot: Bot) -> AsyncIterator[dict[str, Any]]:
        order.append("enter")
        yield {"greeting": "hello"}
        order.append("exit")

    bot = Bot(client=offline_client(), lifespan=lifespan)

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        await anyio.sleep(0.05)
        order.append(ctx.bot.state.greeting)

    await run_events(bot, message_event())
    assert order == ["enter", "hello", "exit"]
    assert "greeting" in bot.state
    with pytest.raises(AttributeError, match="set it in the lifespan"):
        _ = bot.state.missing


async def test_a_lifespan_may_own_a_task_group_for_background_work() -> None:
    done: list[str] = []

    @asynccontextmanager
    async def lifespan(bot: Bot) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as background:
            yield {"background": background}
            background.cancel_scope.cancel()

    bot = Bot(client=offline_client(), lifespan=lifespan)

    @bot.on_message()
    async def later(ctx: Context[MessageReceived]) -> None:
        async def job(text: str) -> None:
            done.append(text)
            await anyio.sleep_forever()  # cancelled when the bot stops

        ctx.bot.state.background.start_soon(job, ctx.text)

    with structlog.testing.capture_logs() as logs:
        await run_events(bot, message_event("remind me"))
    assert done == ["remind me"]
    assert not [e for e in logs if e["log_level"] == "error"]


async def test_startup_and_shutdown_hooks_run_in_order_including_routers() -> None:
    order: list[str] = []
    bot, router = Bot(client=offline_client()), Router()

    @bot.on_startup
    async def first(b: Bot) -> None:
        order.append("start bot")
        b.state.db = "db"

    @router.on_startup()
    async def second(b: Bot) -> None:
        order.append(f"start router {b.state.db}")

    @bot.on_shutdown
    async def stop_bot(b: Bot) -> None:
        order.append("stop bot")

    @router.on_shutdown
    async def stop_router(b: Bot) -> None:
        order.append("stop router")
        raise RuntimeError("logged, not raised")

    bot.include_router(router)
    await run_events(bot)
    assert order == ["start bot", "start router db", "stop router", "stop bot"]


async def test_lifespan_and_hooks_do_not_mix() -> None:
    @asynccontextmanager
    async def lifespan(bot: Bot) -> AsyncIterator[None]:
        yield

    bot = Bot(client=offline_client(), lifespan=lifespan)

    @bot.on_startup
    async def hook(b: Bot) -> None: ...

    with pytest.raises(SetupError, match="either Bot"):
        await run_events(bot)


async def test_a_failing_startup_hook_stops_the_start() -> None:
    bot = Bot(client=offline_client())

    @bot.on_startup
    async def broken(b: Bot) -> None:
        raise LookupError("no database")

    with anyio.fail_after(5), pytest.raises(LookupError, match="no database"):
        async with bot:
            pass
    assert not bot.running


# --------------------------------------------------------------------------- commands & help


def test_commands_list_and_help_text() -> None:
    bot = Bot(client=offline_client())
    assert bot.help_text() == "This bot has no commands: just write to it."

    @bot.command("remind", aliases=["r"])
    async def remind(ctx: Context[MessageReceived], minutes: int, *, text: str) -> None:
        """Remind you of something in a few minutes.

        Longer explanation.
        """

    @bot.command("ping")
    async def ping(ctx: Context[MessageReceived]) -> None: ...

    assert [(c.name, c.aliases, c.usage, c.summary) for c in bot.commands] == [
        (
            "remind",
            ("r",),
            "remind <minutes:int> <text>",
            "Remind you of something in a few minutes.",
        ),
        ("ping", (), "ping", ""),
    ]
    assert bot.help_text() == (
        "Commands:\n"
        "remind <minutes:int> <text> — Remind you of something in a few minutes. (also: r)\n"
        "ping"
    )
    slash = Bot(command_prefixes=("/", "!"))
    slash.add_command(ping, "ping")
    assert slash.commands[0].usage == "/ping"


async def test_the_builtin_help_command_is_opt_in_and_does_not_shadow_yours() -> None:
    bot = Bot(client=offline_client(), help_command=True)
    await run_events(bot)
    assert [c.name for c in bot.commands] == ["help"]
    assert bot.commands[0].summary == "Show the commands this bot understands."
    assert Bot().commands == []
    mine = Bot(client=offline_client(), help_command=True)

    @mine.command("help")
    async def my_help(ctx: Context[MessageReceived]) -> None: ...

    with pytest.raises(SetupError, match="already registered"):
        await run_events(mine)


# --------------------------------------------------------------------------- serving


def signed(body: bytes, key: str) -> dict[str, str]:
    return {**sign(body, key), "Content-Type": "application/json"}


def envelope(text: str, event_id: str) -> bytes:
    event = message_event(text, event_id=event_id)
    return event.model_dump_json(exclude_unset=True).encode()


async def test_serve_reports_the_port_answers_health_and_stops_gracefully() -> None:
    bot = Bot("helper", client=offline_client(), signing_key="whsec_test")
    handled: list[str] = []

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        await anyio.sleep(0.1)
        handled.append(ctx.text)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, aiohttp.ClientSession() as http:
            port = await tg.start(bot.serve, "127.0.0.1", 0)
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/healthz") as response:
                health = await response.json()
            assert health["status"] == "ok" and health["handle"] == "helper"
            assert health["running"] is True
            body = envelope("over http", "evt_http")
            headers = signed(body, "whsec_test")
            async with http.post(f"{base}/webhook", data=body, headers=headers) as response:
                assert response.status == 200
            bot.stop()
    assert handled == ["over http"]  # stop() drained the running handler


async def test_bot_app_mounts_in_another_application_and_runs_the_bot_with_it() -> None:
    bot = Bot(client=offline_client(), signing_key="whsec_test")
    handled = anyio.Event()

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        handled.set()

    main = web.Application()
    main.add_subapp("/imbot", bot.app)
    runner = web.AppRunner(main)
    with anyio.fail_after(10):
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            assert bot.running
            body = envelope("mounted", "evt_mounted")
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{port}/imbot/webhook",
                    data=body,
                    headers=signed(body, "whsec_test"),
                ) as response,
            ):
                assert response.status == 200
            await handled.wait()
        finally:
            await runner.cleanup()
    assert not bot.running


async def test_serve_with_a_port_in_use_raises_os_error() -> None:
    blocker = Bot(client=offline_client(), signing_key="whsec_test")
    other = Bot(client=offline_client(), signing_key="whsec_test")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(blocker.serve, "127.0.0.1", 0)
            with pytest.raises(OSError, match="cannot listen"):
                await other.serve("127.0.0.1", port)
            blocker.stop()
    assert not other.running


# --------------------------------------------------------------------------- logging


def test_configure_logging_json_or_console(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        stream = io.StringIO()
        configure_logging("INFO", stream=stream)  # not a TTY: JSON
        structlog.get_logger("imbot").info("hello", n=1)
        line = json.loads(stream.getvalue().strip().splitlines()[-1])
        assert line["event"] == "hello" and line["n"] == 1 and line["level"] == "info"
        assert not debug_enabled()

        monkeypatch.setenv("IMBOT_LOG_FORMAT", "console")
        monkeypatch.setenv("IMBOT_LOG_LEVEL", "debug")
        stream = io.StringIO()
        configure_logging(stream=stream)
        assert debug_enabled()
        structlog.get_logger("imbot").debug("detail", n=2)
        assert "detail" in stream.getvalue() and "n=2" in stream.getvalue()
        with pytest.raises(ConfigError, match="unknown log level"):
            configure_logging("LOUD")
        with pytest.raises(ConfigError, match="unknown log format"):
            configure_logging(fmt="xml")  # type: ignore[arg-type]
    finally:
        structlog.reset_defaults()
        set_debug(False)


# --------------------------------------------------------------------------- run() and the GC


def _run_and_watch_gc(monkeypatch: pytest.MonkeyPatch, **run_options: Any) -> dict[str, Any]:
    """Run ``bot.run()`` until its startup hook stops it; see the collector from shutdown."""
    import gc

    # run() configures structlog with loggers cached on first use, which would outlive
    # this test and hide later tests' log captures.
    monkeypatch.setattr("imbot.bot.runner.configure_logging", lambda level: None)
    seen: dict[str, Any] = {}
    bot = Bot(client=offline_client(), signing_key="whsec_test")

    @bot.on_startup
    async def stop_at_once(_: Bot) -> None:
        seen["startup"] = gc.get_threshold()
        bot.stop()  # serve() still binds, reports listening, then drains and returns

    @bot.on_shutdown
    async def look(_: Bot) -> None:
        seen["serving"] = gc.get_threshold()
        seen["frozen"] = gc.get_freeze_count()

    before = gc.get_threshold()
    try:
        bot.run(port=0, **run_options)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    seen["before"] = before
    seen["after"] = gc.get_threshold()
    return seen


def test_run_tunes_the_garbage_collector_once_listening_and_restores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imbot.bot.runner import GC_THRESHOLD

    monkeypatch.delenv("IMBOT_GC_TUNING", raising=False)
    seen = _run_and_watch_gc(monkeypatch)
    assert seen["startup"] == seen["before"] != GC_THRESHOLD  # start-up runs untuned
    assert seen["serving"] == GC_THRESHOLD
    assert seen["frozen"] > 1000  # start-up's modules and schemas left the collector's view
    assert seen["after"] == seen["before"]


@pytest.mark.parametrize(("env", "option"), [("0", None), ("off", None), (None, False)])
def test_gc_tuning_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch, env: str | None, option: bool | None
) -> None:
    if env is None:
        monkeypatch.delenv("IMBOT_GC_TUNING", raising=False)
    else:
        monkeypatch.setenv("IMBOT_GC_TUNING", env)
    seen = _run_and_watch_gc(monkeypatch, gc_tuning=option)
    assert seen["serving"] == seen["before"]
    assert seen["frozen"] == 0


def test_the_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from imbot.bot.runner import GC_THRESHOLD

    monkeypatch.setenv("IMBOT_GC_TUNING", "0")
    seen = _run_and_watch_gc(monkeypatch, gc_tuning=True)
    assert seen["serving"] == GC_THRESHOLD


class _StoreThatCannotKeepAnswers(MemoryStateStore):
    """Conversation state works; keeping a ctx.ask answer fails (a store on a bad day)."""

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        if conversation_id.startswith("imbot.ask:"):
            raise OSError("disk full")
        await super().save(conversation_id, data)


async def test_an_answer_that_cannot_be_kept_still_reaches_the_handler() -> None:
    bot = Bot(client=offline_client(), state=_StoreThatCannotKeepAnswers())
    got: list[str] = []
    asking = anyio.Event()

    @bot.command("quiz")
    async def quiz(ctx: Context[MessageReceived]) -> None:
        asking.set()
        answer = await ctx.ask(timeout=5)
        got.append(answer.text)

    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with bot:
            await bot.feed(message_event("quiz"))
            await asking.wait()
            await bot.feed(message_event("42"))
    assert got == ["42"]
    assert any(e["event"].startswith("could not keep a ctx.ask answer") for e in logs)
