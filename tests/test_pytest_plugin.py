"""The pytest plugin, tested the way users meet it: a test file run by a fresh pytest.

Each case writes a user's bot and tests into a temporary directory and runs pytest on them
in a subprocess (the plugin loads through its ``pytest11`` entry point), with a timeout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parent.parent / "docs"

RUN_TIMEOUT = 120  # seconds per inner pytest run

BOT = """
from imbot import Bot

bot = Bot()


@bot.on_message()
async def echo(ctx):
    if ctx.text == "boom":
        raise ValueError("kaboom")
    await ctx.reply("echo: " + ctx.text)
"""

USER_TESTS = """
import pytest

from mybot import bot as my_bot


@pytest.fixture
def bot():
    return my_bot


async def test_echo(imbot_chat):
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply("echo: hi")


async def test_second_human(imbot_harness):
    bob = imbot_harness.chat("+15550001111")
    await bob.connect()
    await bob.say("yo")
    await bob.expect_reply("echo: yo")


@pytest.mark.imbot(connect=False, handle="otherbot")
async def test_marker_options(imbot_chat, imbot_simulator):
    assert imbot_chat.handle == "otherbot"
    greeting = await imbot_chat.connect()
    assert [g.text for g in greeting] == ["echo: connect @otherbot"]
    assert imbot_simulator.base_url.startswith("http://127.0.0.1:")
"""


def _project(pytester: pytest.Pytester, mode: str = "auto") -> None:
    pytester.makepyfile(mybot=BOT)
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT)


def test_a_user_test_file_passes(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(test_user=USER_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=3)


def test_the_fixtures_work_in_strict_mode(pytester: pytest.Pytester) -> None:
    _project(pytester, mode="strict")
    pytester.makepyfile(
        test_strict="""
        import pytest

        pytestmark = pytest.mark.imbot(bot="mybot:bot")


        @pytest.mark.asyncio
        async def test_echo(imbot_chat):
            await imbot_chat.say("strict")
            await imbot_chat.expect_reply("echo: strict")
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_a_wrong_expectation_fails_and_prints_the_conversation(
    pytester: pytest.Pytester,
) -> None:
    """The acceptance case: a deliberately wrong expectation fails with the transcript."""
    _project(pytester)
    pytester.makepyfile(
        test_wrong="""
        import pytest


        @pytest.mark.imbot(bot="mybot:bot")
        async def test_wrong(imbot_chat):
            await imbot_chat.say("hi")
            await imbot_chat.expect_reply("echo: bye")
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: expected a reply with text 'echo: bye', but the bot said 'echo: hi'",
            "*Conversation of +15555550100 with @testbot:",
            "*  me: connect @testbot*",
            "*  router: Connected to @testbot.*",
            "*  bot: echo: connect @testbot [[]delivered[]]",
            "*  me: hi [[]*[]]",
            "*  bot: echo: hi [[]delivered[]]",
        ]
    )


def test_a_handler_error_fails_the_test(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(
        test_boom="""
        import pytest


        @pytest.mark.imbot(bot="mybot:bot")
        async def test_boom(imbot_chat):
            await imbot_chat.say("boom")
            await imbot_chat.expect_reply("never")


        @pytest.mark.imbot(bot="mybot:bot", raise_handler_errors=False)
        async def test_collected(imbot_harness, imbot_chat):
            await imbot_chat.say("boom")
            await imbot_chat.expect_silence(0.3)
            assert [type(e.exception).__name__ for e in imbot_harness.errors] == ["ValueError"]
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ValueError: kaboom", "*raised by the bot in *echo*"])


def test_a_missing_bot_is_explained(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(
        test_nobot="""
        async def test_no_bot(imbot_chat):
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define a fixture named `bot`*@pytest.mark.imbot(bot=my_bot)*"])


def test_unknown_marker_keywords_are_refused(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(
        test_typo="""
        import pytest


        @pytest.mark.imbot(bot="mybot:bot", hadnle="x")
        async def test_typo(imbot_chat):
            pass
        """
    )
    result = _run(pytester, "--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown keyword(s) [[]'hadnle'[]]*"])


def _documented_pytest_config() -> str:
    """The ``pyproject.toml`` snippet docs/testing.md tells users to write."""
    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    found = [b for b in blocks if "[tool.pytest.ini_options]" in b]
    assert len(found) == 1, "docs/testing.md should show one pytest configuration"
    return found[0]


def test_the_documented_pytest_config_runs_without_warnings(pytester: pytest.Pytester) -> None:
    """Issue 14, item 4: the testing docs' configuration, as a user copies it, warns of nothing."""
    pytester.makepyfile(mybot=BOT)
    pytester.makefile(".toml", pyproject=_documented_pytest_config())
    pytester.makepyfile(
        test_user="""
        import pytest

        pytestmark = pytest.mark.imbot(bot="mybot:bot")


        async def test_echo(imbot_chat):
            await imbot_chat.say("hi")
            await imbot_chat.expect_reply("echo: hi")
        """
    )
    result = _run(pytester, "-W", "error")
    result.assert_outcomes(passed=1, warnings=0)
    assert "warnings summary" not in result.stdout.str()
    assert "Warning" not in result.stderr.str()


def test_a_failed_expectation_points_at_the_test_line_not_the_kit(
    pytester: pytest.Pytester,
) -> None:
    """Issue 14, item 12: the traceback started inside the kit (its waiting code) before the
    transcript; now it shows the user's line, then the failure, and no frame of the kit."""
    _project(pytester)
    pytester.makepyfile(
        test_where="""
        import pytest

        pytestmark = pytest.mark.imbot(bot="mybot:bot")


        async def test_wrong(imbot_chat):
            await imbot_chat.say("hi")
            await imbot_chat.expect_reply("echo: bye")  # the user's line


        async def test_boom(imbot_chat):
            await imbot_chat.say("boom")
            await imbot_chat.expect_reply("never")
        """
    )
    result = _run(pytester, "--tb=long")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    for kit in ("imbot/testing/", "imbot\\testing\\"):
        assert kit not in output
    result.stdout.fnmatch_lines(
        [
            "*_ test_wrong _*",
            "*async def test_wrong(imbot_chat):",
            '*await imbot_chat.say("hi")',
            '>*await imbot_chat.expect_reply("echo: bye")  # the user\'s line',
            "E*AssertionError: expected a reply with text 'echo: bye', but the bot said 'echo: hi'",
        ]
    )
    # A handler error still shows where the handler raised it, in the user's bot.
    result.stdout.fnmatch_lines(
        [
            "*_ test_boom _*",
            '>*await imbot_chat.expect_reply("never")',
            '>*raise ValueError("kaboom")',
            "E*ValueError: kaboom",
            "mybot.py:*: ValueError",
        ]
    )


def _fenced(page: str, language: str, marker: str) -> str:
    """The one ``language`` block of docs/``page`` that contains ``marker``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"docs/{page} should show one {language} block with {marker!r}"
    return found[0]


def test_the_quickstart_project_passes_without_warnings(pytester: pytest.Pytester) -> None:
    """The quickstart's bot, its tests (reading ctx.state) and its pytest configuration,
    copied as a newcomer would: they pass, and pytest warns of nothing."""
    pytester.makepyfile(bot=_fenced("quickstart.md", "python", "bot = Bot(help_command=True)"))
    pytester.makepyfile(test_bot=_fenced("quickstart.md", "python", "from bot import bot"))
    config = _fenced("quickstart.md", "toml", "[tool.pytest.ini_options]")
    # One configuration, in both pages.
    assert config in _documented_pytest_config()
    pytester.makefile(".toml", pyproject=config)
    result = _run(pytester, "-W", "error")
    result.assert_outcomes(passed=2, warnings=0)
    assert "warnings summary" not in result.stdout.str()
    assert "Warning" not in result.stderr.str()
