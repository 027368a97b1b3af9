"""Agent: an LLM that texts, with memory per conversation and the typing bubble.

Run it with `imbot dev examples/agent.py`. With `OPENAI_API_KEY` set it calls any
OpenAI-compatible endpoint (`OPENAI_BASE_URL`, default https://api.openai.com/v1; model
`OPENAI_MODEL`, default gpt-4o-mini). Without a key it uses a tiny rule-based brain, so it
runs offline: try "my name is Ada", then "what's my name?". Text `reset` to clear its memory.
"""

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from imbot import Bot, Context, MessageReceived

MAX_TURNS = 10  # remembered exchanges per conversation (a user message + the answer)
SYSTEM = "You are a friendly assistant texting over iMessage. Answer in a few short sentences."


@dataclass(frozen=True)
class LLM:
    """Where to send chat completions."""

    base_url: str
    api_key: str
    model: str


@asynccontextmanager
async def lifespan(bot: Bot) -> AsyncIterator[dict[str, Any]]:
    # Settings are read when the bot starts; one HTTP session serves every conversation.
    key = os.environ.get("OPENAI_API_KEY")
    llm = None
    if key:
        base_url = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        llm = LLM(base_url.rstrip("/"), key, os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        yield {"http": http, "llm": llm}


bot = Bot(lifespan=lifespan)


@bot.on_connect
async def introduce(ctx: Context[MessageReceived]) -> None:
    # The human's first message after connecting: introduce the agent, then `chat` below
    # answers that message as usual.
    await ctx.reply("Hi! I'm an AI agent. Ask me anything, or text reset to clear my memory.")


@bot.command("reset")
async def reset(ctx: Context[MessageReceived]) -> None:
    """Forget this conversation."""
    ctx.state.pop("history", None)
    await ctx.reply("Memory cleared. What's on your mind?")


@bot.on_message()
async def chat(ctx: Context[MessageReceived]) -> None:
    # A copy: if the model call fails, the remembered history stays as it was.
    history = [*ctx.state.get("history", []), {"role": "user", "content": ctx.text}]
    async with ctx.typing():  # the bubble stays up while the model thinks
        llm: LLM | None = ctx.bot.state.llm
        if llm is None:
            answer = offline_answer(history)
        else:
            answer = await complete(ctx.bot.state.http, llm, history)
    history.append({"role": "assistant", "content": answer})
    ctx.state["history"] = history[-2 * MAX_TURNS :]  # saved after the handler
    await ctx.reply(answer)


@bot.on_error(aiohttp.ClientError)
async def llm_unavailable(ctx: Context[MessageReceived], exc: aiohttp.ClientError) -> None:
    ctx.log.warning("the model call failed", error=repr(exc))
    await ctx.reply("Sorry, I can't think right now. Try again in a minute.")


async def complete(http: aiohttp.ClientSession, llm: LLM, history: list[dict[str, str]]) -> str:
    """One chat completion: the system prompt, then the remembered turns."""
    async with http.post(
        f"{llm.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {llm.api_key}"},
        json={"model": llm.model, "messages": [{"role": "system", "content": SYSTEM}, *history]},
    ) as response:
        response.raise_for_status()  # an error status goes to llm_unavailable
        data = await response.json()
    return str(data["choices"][0]["message"]["content"]).strip()


def offline_answer(history: list[dict[str, str]]) -> str:
    """A rule-based stand-in for the model, using the same memory."""
    text = history[-1]["content"].strip()
    said = [turn["content"] for turn in history[:-1] if turn["role"] == "user"]
    if match := re.search(r"\bmy name is (\w+)", text, re.IGNORECASE):
        return f"Nice to meet you, {match.group(1)}!"
    if re.search(r"\bwhat'?s my name\b", text, re.IGNORECASE):
        for earlier in reversed(said):
            if match := re.search(r"\bmy name is (\w+)", earlier, re.IGNORECASE):
                return f"You're {match.group(1)}."
        return "You haven't told me yet."
    if re.fullmatch(r"(hi|hello|hey)\W*", text, re.IGNORECASE):
        return "Hello! (I'm running offline: set OPENAI_API_KEY for a real model.)"
    return f"I'm offline, but I heard you: {text!r}. That's message {len(said) + 1} from you."
