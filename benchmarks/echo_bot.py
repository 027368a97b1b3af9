"""The imbot contender: an echo bot written the way the README teaches.

Started by the benchmark as ``imbot run benchmarks/echo_bot.py``; its settings come from the
environment (``INKBOX_API_KEY``, ``INKBOX_BASE_URL`` pointing at the stub,
``IMBOT_SIGNING_KEY``).
"""

from __future__ import annotations

from imbot import Bot, Context, MessageReceived

bot = Bot()


@bot.on_message()
async def echo(ctx: Context[MessageReceived]) -> None:
    """Reply with the text that came in."""
    await ctx.reply(ctx.text)
