"""A model that fails: the human gets an apology, the error listeners hear of it.

Not silence, and not a crash: the bot goes on answering the next turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ai_helpers import Asked
from pydantic_ai import Agent, ModelHTTPError, ModelMessage, UnexpectedModelBehavior
from pydantic_ai.models.function import AgentInfo, FunctionModel

from imbot import Bot
from imbot.ai import DEFAULT_APOLOGY, serve_agent
from imbot.testing import BotHarness


async def test_a_failing_model_gets_an_apology_and_an_error_report() -> None:
    asked = Asked()

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        prompt = asked.record(messages)
        if prompt == "first":
            raise ModelHTTPError(503, "tiny-model", body={"error": "overloaded"})
        if prompt == "second":
            raise UnexpectedModelBehavior("the answer was cut off")
        yield "Back to normal."

    bot = Bot()
    serve_agent(bot, Agent(FunctionModel(stream_function=think)))
    async with BotHarness(bot, connect_event=False, raise_handler_errors=False) as h:
        chat = h.chat()
        await chat.say("first")
        await chat.expect_reply(DEFAULT_APOLOGY)
        await chat.say("second")
        await chat.expect_reply(DEFAULT_APOLOGY)
        await chat.say("third")
        await chat.expect_reply("Back to normal.")
    reported = [error.exception for error in h.errors]
    assert [type(exc) for exc in reported] == [ModelHTTPError, UnexpectedModelBehavior]
    assert isinstance(reported[0], ModelHTTPError) and reported[0].status_code == 503


async def test_the_apology_is_yours_to_word_and_a_non_streaming_model_fails_alike() -> None:
    def think(messages: list[ModelMessage], info: AgentInfo) -> object:
        raise ModelHTTPError(429, "tiny-model")

    bot = Bot()
    agent = Agent(FunctionModel(think))  # no stream function: run_agent does not stream
    serve_agent(bot, agent, apology="Too many questions at once, give me a minute.")
    async with BotHarness(bot, connect_event=False, raise_handler_errors=False) as h:
        chat = h.chat()
        await chat.say("hello?")
        await chat.expect_reply("Too many questions at once, give me a minute.")
    assert [type(error.exception) for error in h.errors] == [ModelHTTPError]
