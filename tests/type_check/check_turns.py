"""Read by mypy only (``mypy --strict tests/type_check``): turn handlers and ``ctx.turn`` typed."""

from __future__ import annotations

from typing import assert_type

from imbot import Bot, Context, Message, MessageReceived, MessageSent, Reaction, Router, Turn

bot = Bot()


@bot.on_turn(quiet=0.5, max_wait=1.5, max_messages=4, max_chars=500, interrupt=False)
async def chat(ctx: Context[MessageReceived]) -> None:
    turn = ctx.turn
    assert turn is not None
    assert_type(turn, Turn)
    assert_type(turn.messages, list[Message])
    assert_type(turn.reactions, list[Reaction])
    assert_type(turn.text, str)
    assert_type(turn.restarts, int)
    assert_type(turn.last, MessageReceived)
    turn.mark_sent()


@bot.on_turn
async def bare(ctx: Context[MessageReceived]) -> None: ...


Router().add_turn_handler(chat, quiet=0.2)
bot.on_turn(quiet="soon")  # type: ignore[call-overload]


@bot.on_turn()  # type: ignore[type-var]
async def wrong_event(ctx: Context[MessageSent]) -> None: ...
