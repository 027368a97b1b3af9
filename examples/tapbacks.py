"""Tapbacks: react to what people say, and answer their tapbacks.

Run it with `imbot dev examples/tapbacks.py`, then text "I love it", "haha" or "thanks",
and tapback the bot's messages (tap a bubble on the chat page).
"""

from imbot import Bot, Context, MessageReceived, ReactionReceived

bot = Bot()


@bot.on_message(contains=["love", "thanks", "thank you"])
async def heart(ctx: Context[MessageReceived]) -> None:
    await ctx.react("love")  # on the message that triggered the handler


@bot.on_message(contains=["haha", "lol", "😂"])
async def laugh(ctx: Context[MessageReceived]) -> None:
    await ctx.react("laugh")


@bot.on_message()
async def anything_else(ctx: Context[MessageReceived]) -> None:
    # Handlers are tried in order; this one takes what the two above did not.
    await ctx.reply("Say something nice (or funny) and watch my tapbacks.")


@bot.on_tapback("love")
async def loved(ctx: Context[ReactionReceived]) -> None:
    await ctx.reply("❤️ right back at you!")


@bot.on_tapback
async def any_tapback(ctx: Context[ReactionReceived]) -> None:
    assert ctx.reaction is not None  # always set in a tapback handler
    await ctx.reply(f"Thanks for the {ctx.reaction.reaction} tapback.")
