"""Help and the usage reply to bad command arguments show the same prefix.

With prefixes of equal length, ``bot.commands`` (and so ``help_text``) picked the first
given while the route table's usage replies picked the last: ``("/", "!")`` showed
``/remind`` in help but ``Usage: !remind`` after a wrong argument.
"""

from __future__ import annotations

from imbot import Bot, Context, MessageReceived
from imbot.routing.table import RouteTable


def test_help_and_usage_replies_agree_on_the_prefix() -> None:
    bot = Bot(command_prefixes=("/", "!"))

    @bot.command("remind")
    async def remind(ctx: Context[MessageReceived], minutes: int) -> None: ...

    table = RouteTable(bot, prefixes=bot.command_prefixes)
    assert bot.commands[0].usage == "/remind <minutes:int>"
    assert table.usage(table.commands["remind"]) == bot.commands[0].usage
