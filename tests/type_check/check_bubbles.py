"""Read by mypy only (``mypy --strict tests/type_check``): bubbles, streams, history typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import assert_type

from imbot import Bot, Bubbles, Context, HistoryEntry, Message, MessageReceived, Pacing
from imbot.bot.history import to_openai_messages

bot = Bot(bubbles=Bubbles(limit=300), pacing=Pacing(per_char=0.02, min=0.5, max=3.0))
Bot(bubbles=True, pacing=Pacing.instant())
Bot(bubbles="yes")  # type: ignore[arg-type]


async def model(prompt: str) -> AsyncIterator[str]:
    yield prompt


@bot.on_message()
async def answer(ctx: Context[MessageReceived]) -> None:
    assert_type(await ctx.reply("One.\n\nTwo.", bubbles=True), Message)
    assert_type(await ctx.reply_stream(model(ctx.text)), list[Message])
    await ctx.reply_stream(["not", "async"])  # type: ignore[arg-type]
    history = await ctx.history(limit=30)
    assert_type(history, list[HistoryEntry])
    assert_type(history[0].at, datetime)
    assert_type(to_openai_messages(history), list[dict[str, str]])
