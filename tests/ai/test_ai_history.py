"""The model sees the conversation so far, read from the API: even after the bot restarts.

Two bots, one after the other, on one simulator (as a deploy replaces a process): the second
keeps nothing from the first, yet its model is shown the earlier exchange, with the agent's
system prompt in front of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ai_helpers import Asked, history_of
from pydantic_ai import Agent, ModelMessage, ModelRequest, SystemPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from imbot import Bot
from imbot.ai import run_agent, serve_agent
from imbot.sim import Simulator
from imbot.testing import BotHarness

SYSTEM = "You are a weather bot."


def weather_agent(asked: Asked) -> Agent[None, str]:
    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        prompt = asked.record(messages)
        yield f"Noted: {prompt}"

    return Agent(FunctionModel(stream_function=think), system_prompt=SYSTEM)


async def test_after_a_restart_the_model_is_shown_the_earlier_exchange() -> None:
    before, after = Asked(), Asked()
    async with Simulator(db=":memory:", host="127.0.0.1", port=0) as sim:
        first = Bot()
        serve_agent(first, weather_agent(before))
        async with BotHarness(first, simulator=sim, connect_event=False) as h:
            chat = h.chat()
            await chat.say("I live in Oslo")
            await chat.expect_reply("Noted: I live in Oslo")

        second = Bot()  # a new process: nothing in memory
        serve_agent(second, weather_agent(after))
        async with BotHarness(second, simulator=sim, connect=False) as h:
            chat = h.chat()
            await chat.say("and the weather?")
            await chat.expect_reply("Noted: and the weather?")

    assert history_of(before.calls[0]) == []
    shown = after.calls[0]
    assert history_of(shown) == [("user", "I live in Oslo"), ("assistant", "Noted: I live in Oslo")]
    # The system prompt leads the history, as it would in a run without history.
    first_request = shown[0]
    assert isinstance(first_request, ModelRequest)
    assert isinstance(first_request.parts[0], SystemPromptPart)
    assert first_request.parts[0].content == SYSTEM


async def test_run_agent_with_no_history_and_in_a_plain_message_handler() -> None:
    asked = Asked()
    bot = Bot()

    @bot.on_message()
    async def chat(ctx):  # type: ignore[no-untyped-def]
        await run_agent(ctx, weather_agent(asked), history=0)

    async with BotHarness(bot, connect_event=False) as h:
        chat_ = h.chat()
        await chat_.say("one")
        await chat_.expect_reply("Noted: one")
        await chat_.say("two")
        await chat_.expect_reply("Noted: two")
    assert [history_of(call) for call in asked.calls] == [[], []]
