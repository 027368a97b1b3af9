"""The help message: commands listed with usage and summary; hidden ones work but are not listed.

Issue 14, item 6: ``Bot(help_command=True)`` listed the greeting ``connect`` command that the
docs recommend, which the human never types to the bot.
"""

from __future__ import annotations

import pytest

from imbot import Bot, Context, MessageReceived, Router
from imbot.errors import SetupError
from imbot.routing.commands import CommandInfo
from imbot.routing.help import help_text
from imbot.testing.events import message_event, offline_client, run_events


def test_a_connect_command_is_hidden_from_help_by_default() -> None:
    bot = Bot(client=offline_client())

    @bot.command("connect")
    async def greet(ctx: Context[MessageReceived]) -> None:
        """Say hello."""

    @bot.command("add")
    async def add(ctx: Context[MessageReceived], a: float, b: float) -> None:
        """Add two numbers."""

    assert [(c.name, c.hidden) for c in bot.commands] == [("connect", True), ("add", False)]
    assert bot.help_text() == "Commands:\nadd <a:float> <b:float> — Add two numbers."


def test_hidden_is_explicit_both_ways_and_has_a_method_twin() -> None:
    bot = Bot(client=offline_client())
    router = Router(name="ops")

    @bot.command("connect", hidden=False)
    async def greet(ctx: Context[MessageReceived]) -> None:
        """Say hello."""

    @router.command("debug", aliases=["dbg"], hidden=True)
    async def debug(ctx: Context[MessageReceived]) -> None:
        """Dump the state."""

    async def stats(ctx: Context[MessageReceived]) -> None:
        """Show counters."""

    bot.add_command(stats, "stats", hidden=True)
    bot.include_router(router)
    assert {c.name: c.hidden for c in bot.commands} == {
        "connect": False,
        "stats": True,
        "debug": True,
    }
    assert bot.help_text() == "Commands:\nconnect — Say hello."


def test_a_bot_with_only_hidden_commands_has_nothing_to_list() -> None:
    only = [CommandInfo("connect", (), "connect", "Say hello.", hidden=True)]
    assert help_text(only) == "This bot has no commands: just write to it."


def test_hidden_must_be_a_bool() -> None:
    bot = Bot(client=offline_client())
    with pytest.raises(SetupError, match="hidden must be True or False"):

        @bot.command("debug", hidden="yes")  # type: ignore[arg-type]
        async def debug(ctx: Context[MessageReceived]) -> None: ...


async def test_a_hidden_command_still_runs() -> None:
    bot = Bot(client=offline_client())
    seen: list[str] = []

    @bot.command("debug", hidden=True)
    async def debug(ctx: Context[MessageReceived], *words: str) -> None:
        seen.append(" ".join(words))

    await run_events(bot, message_event("/debug a b"))
    assert seen == ["a b"]
