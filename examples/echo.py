"""Echo: the smallest bot. Run it with `imbot dev examples/echo.py`."""

from imbot import Bot

bot = Bot()


@bot.on_message()
async def echo(ctx):
    await ctx.reply(ctx.text)
