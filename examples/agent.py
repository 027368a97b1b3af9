"""Agent: a pydantic-ai agent that texts like a person, in one line of imbot.

Run it with `imbot dev examples/agent.py`. With `OPENAI_API_KEY` set it uses a real model
(any OpenAI-compatible endpoint: `OPENAI_BASE_URL`; model `OPENAI_MODEL`, default
gpt-4o-mini). Without a key it runs offline on a small scripted model, so the demo still
answers. Try three quick texts in a row (one answer), "tell me a story" (bubbles),
"my name is Ada" then "what's my name?" (history), and "thanks" (a tapback).
"""

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic_ai import Agent, ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel

from imbot import Bot
from imbot.ai import ConversationDeps, conversation_tools, serve_agent

STORY = (
    "Once upon a time, a lighthouse keeper named Ada wrote down every ship that passed her "
    "rock.\n\n"
    "One winter night the lamp went out, so Ada sang from the top of the tower until the "
    "ships heard her.\n\n"
    "In the morning every captain rowed ashore to thank her, and to be written in her "
    "notebook again."
)


async def offline(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
    """A scripted stand-in for a model: it gets what a real one gets, the history and the turn."""
    said = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]
    turn = said[-1] if said else ""
    if isinstance(messages[-1].parts[-1], ToolReturnPart):
        answer = "You're welcome!"  # the tapback was sent: now say something
    elif re.search(r"\bthank", turn, re.IGNORECASE):
        yield {0: DeltaToolCall("react", '{"kind": "love"}')}  # a tool call: tapback ❤️
        return
    elif re.search(r"\b(story|explain)\b", turn, re.IGNORECASE):
        answer = STORY
    elif re.search(r"\bwhat'?s my name\b", turn, re.IGNORECASE):
        names = re.findall(r"\bmy name is (\w+)", "\n".join(said), re.IGNORECASE)
        answer = f"You're {names[-1]}." if names else "You haven't told me yet."
    elif "\n" in turn:
        texts = ", ".join(f'"{line}"' for line in turn.splitlines())
        answer = f"Got your {len(turn.splitlines())} texts at once: {texts}."
    else:
        answer = f'You said "{turn}". (I\'m offline: set OPENAI_API_KEY for a real model.)'
    for word in re.findall(r"\S+\s*", answer):  # stream it, a word at a time
        yield word


def model() -> Model:
    """A real model when there is an API key (read from the environment), else the offline one."""
    if os.environ.get("OPENAI_API_KEY"):
        return OpenAIChatModel(os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    return FunctionModel(stream_function=offline, model_name="offline")


agent = Agent(
    model(),
    deps_type=ConversationDeps,
    toolsets=[conversation_tools()],  # react, send_image, ask_follow_up
    instructions="You are a friendly assistant texting over iMessage. Keep it short and warm.",
)


@asynccontextmanager
async def lifespan(bot: Bot) -> AsyncIterator[None]:
    async with agent:  # the model's HTTP connections are closed when the bot stops
        yield


bot = Bot(lifespan=lifespan)
serve_agent(bot, agent)  # one answer per turn: history, typing, streaming, bubbles
