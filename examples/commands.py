"""Commands: a greeting when someone connects, `help`, and typed arguments.

Run it with `imbot dev examples/commands.py`, then text `help`, `add 2 3.5`,
`/remind 1 stretch` or `add two three` (wrong types get the usage line).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from imbot import Bot, Context, MessageReceived


@asynccontextmanager
async def lifespan(bot: Bot) -> AsyncIterator[dict[str, Any]]:
    # Reminders wait in this task group; they are cancelled when the bot stops.
    async with anyio.create_task_group() as reminders:
        yield {"reminders": reminders}  # becomes bot.state.reminders
        reminders.cancel_scope.cancel()


# help_command=True adds `help`, which lists the commands with their docstrings.
bot = Bot(help_command=True, lifespan=lifespan)


@bot.on_connect
async def greet(ctx: Context[MessageReceived]) -> None:
    # Runs on the human's first message after they connect (the `connect @handle` text
    # itself goes to Inkbox's router, never to the bot); that message is then routed as
    # usual, so a first `help` still gets the help.
    await ctx.reply("Hi! I'm a command bot. Text help to see what I can do.")


@bot.command("add")
async def add(ctx: Context[MessageReceived], a: float, b: float) -> None:
    """Add two numbers."""
    # `add 2 3.5` calls add(ctx, 2.0, 3.5); `add two 3` gets the usage line instead.
    await ctx.reply(f"{a:g} + {b:g} = {a + b:g}")


@bot.command("remind", aliases=["r"])
async def remind(ctx: Context[MessageReceived], minutes: int, *, text: str) -> None:
    """Remind you of something in a few minutes."""
    # The keyword-only `text` takes the rest of the message, spaces included.
    ctx.bot.state.reminders.start_soon(later, ctx.bot, ctx.conversation_id, minutes, text)
    await ctx.reply(f"OK, I'll remind you in {minutes} min: {text}")


async def later(bot: Bot, conversation_id: str, minutes: int, text: str) -> None:
    await anyio.sleep(minutes * 60)
    await bot.send(f"⏰ {text}", conversation_id=conversation_id)


@bot.on_message()
async def fallback(ctx: Context[MessageReceived]) -> None:
    # Runs when no command matched. On the first message the greeting already said it.
    if not ctx.new_connection:
        await ctx.reply("I don't know that one. Text help to see the commands.")
