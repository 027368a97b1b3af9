"""Stateful: a small sign-up dialog with `ctx.ask`, remembered in `ctx.state`.

Run it with `imbot dev examples/stateful.py`. The bot asks your name, then your city, and
greets you by name on later visits. Text `forget` to start over.

`ctx.state` is per conversation and saved after each handler. It lives in memory here; pass
`Bot(state="sqlite:///bot.db")` to keep it across restarts.
"""

from imbot import AskTimeout, Bot, Context, MessageReceived

bot = Bot()


@bot.command("forget")
async def forget(ctx: Context[MessageReceived]) -> None:
    """Forget who you are."""
    ctx.state.clear()
    await ctx.reply("Done, I forgot you. Text me to sign up again.")


@bot.on_message()
async def welcome(ctx: Context[MessageReceived]) -> None:
    profile = ctx.state.get("profile")
    if profile is not None:
        ctx.state["visits"] = ctx.state.get("visits", 1) + 1
        await ctx.reply(f"Welcome back, {profile['name']} from {profile['city']}!")
        return
    try:
        # ctx.ask sends the question and waits for this person's next message; other
        # conversations keep flowing meanwhile.
        answer = await ctx.ask("Hi! I don't know you yet. What's your name?", timeout=600)
        name = (answer.content or "").strip()
        answer = await ctx.ask(f"Nice to meet you, {name}! Which city are you in?")
        city = (answer.content or "").strip()
    except AskTimeout:
        await ctx.reply("No rush: text me whenever you like.")
        return
    ctx.state["profile"] = {"name": name, "city": city}
    await ctx.reply(f"Thanks! I'll remember you, {name} from {city}.")
