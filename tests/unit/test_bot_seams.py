"""The Bot's public seams for tools around it: configured(), error listeners, early bind check."""

from __future__ import annotations

import errno
import socket
from typing import Any

import anyio
import pytest

from imbot import Bot, Context, MessageReceived
from imbot.errors import ConfigError, SetupError
from imbot.testing.events import message_event, offline_client, run_events

# --------------------------------------------------------------------------- configured()


def test_configured_overrides_for_the_block_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMBOT_HANDLE", "env")
    monkeypatch.setenv("IMBOT_SIGNING_KEY", "whsec_env")
    bot = Bot()
    with bot.configured(handle="sim", signing_key="whsec_a,whsec_b") as same:
        assert same is bot
        assert bot.handle == "sim"
        assert bot.signing_keys() == ("whsec_a", "whsec_b")
    assert bot.handle == "env"
    assert bot.signing_keys() == ("whsec_env",)


def test_configured_none_keeps_a_setting_and_arguments_come_back() -> None:
    bot = Bot("arg", signing_key="whsec_arg")
    with bot.configured(signing_key=["whsec_x"]):
        assert bot.handle == "arg"  # not given: unchanged
        assert bot.signing_keys() == ("whsec_x",)
    assert (bot.handle, bot.signing_keys()) == ("arg", ("whsec_arg",))


def test_configured_restores_after_an_exception_and_can_nest() -> None:
    bot = Bot()
    with pytest.raises(KeyError), bot.configured(handle="outer"):
        with bot.configured(handle="inner"):
            assert bot.handle == "inner"
        assert bot.handle == "outer"
        raise KeyError("x")
    assert bot.handle is None
    with pytest.raises(ConfigError):
        bot.signing_keys()


async def test_configured_api_key_and_base_url_reach_the_client() -> None:
    bot = Bot()
    with bot.configured(api_key="ApiKey_sim", base_url="http://127.0.0.1:9"):
        with anyio.fail_after(5):
            async with bot:
                assert bot.client.base_url == "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="INKBOX_API_KEY"):
        async with bot:  # restored: no API key anywhere again
            pass


async def test_configured_is_refused_while_running() -> None:
    bot = Bot(client=offline_client())
    with anyio.fail_after(5):
        async with bot:
            refused = pytest.raises(SetupError, match="while the bot is running")
            with refused, bot.configured(handle="late"):
                pass
    with bot.configured(handle="after"):
        assert bot.handle == "after"


def test_configured_refuses_client_settings_for_a_bot_with_its_own_client() -> None:
    bot = Bot(client=offline_client())
    for settings in ({"api_key": "ApiKey_x"}, {"base_url": "http://127.0.0.1:1"}):
        with pytest.raises(SetupError, match="client="), bot.configured(**settings):
            pass
    with bot.configured(handle="fine", signing_key="whsec_fine"):  # not the client's
        assert bot.handle == "fine"


# --------------------------------------------------------------------------- error listeners


def make_failing_bot(on_error: bool = False) -> Bot:
    bot = Bot(client=offline_client())

    @bot.on_message()
    async def boom(ctx: Context[MessageReceived]) -> None:
        raise ZeroDivisionError(ctx.text)

    if on_error:

        @bot.on_error(ZeroDivisionError)
        async def handled(ctx: Context[Any], exc: ZeroDivisionError) -> None:
            return None

    return bot


async def test_error_listeners_hear_unhandled_handler_errors() -> None:
    bot = make_failing_bot()
    heard: list[tuple[str | None, str]] = []

    def listener(ctx: Context[Any], exc: BaseException) -> None:
        heard.append((ctx.handler_name, repr(exc)))

    bot.add_error_listener(listener)
    await run_events(bot, message_event("one"))
    assert len(heard) == 1
    assert heard[0][0] is not None and heard[0][0].endswith("boom")
    assert heard[0][1] == "ZeroDivisionError('one')"

    bot.remove_error_listener(listener)
    bot.remove_error_listener(listener)  # not there any more: no error
    await run_events(bot, message_event("two"))
    assert len(heard) == 1


async def test_error_listeners_do_not_hear_errors_an_error_handler_took() -> None:
    bot = make_failing_bot(on_error=True)
    heard: list[BaseException] = []
    bot.add_error_listener(lambda ctx, exc: heard.append(exc))
    await run_events(bot, message_event("handled"))
    assert heard == []


# --------------------------------------------------------------------------- serve: bind first


async def test_a_taken_port_fails_before_the_bot_starts() -> None:
    bot = Bot(client=offline_client(), signing_key="whsec_test")
    calls: list[str] = []

    @bot.on_startup
    async def started(b: Bot) -> None:
        calls.append("startup")

    @bot.on_shutdown
    async def stopped(b: Bot) -> None:
        calls.append("shutdown")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with anyio.fail_after(5), pytest.raises(OSError, match="cannot listen") as caught:
            await bot.serve("127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE  # what the CLI turns into one line
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert calls == []  # nothing started, nothing stopped
    assert not bot.running


async def test_a_free_port_still_serves_after_the_check() -> None:
    bot = Bot(client=offline_client(), signing_key="whsec_test")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            bound = await tg.start(bot.serve, "127.0.0.1", port)
            assert bound == port and bot.running
            bot.stop()
    assert not bot.running
