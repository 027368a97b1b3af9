"""conversation_tools in the simulator: the model reacts, sends an image, asks a follow-up.

Each model is a ``FunctionModel`` that calls a tool on its first request and answers with
what the tool returned on the next, as a real model does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from ai_helpers import Asked
from pydantic_ai import (
    Agent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.test import TestModel

from imbot import Bot
from imbot.ai import ConversationDeps, conversation_tools, serve_agent
from imbot.testing import BotHarness, tiny_png

Chunk = str | dict[int, DeltaToolCall]


def tool_result(messages: list[ModelMessage]) -> str | None:
    """What the last tool call returned (or why it failed), if the run is past one."""
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    for part in last.parts:
        if isinstance(part, ToolReturnPart):
            return str(part.content)
    return None


def call(name: str, **args: object) -> dict[int, DeltaToolCall]:
    return {0: DeltaToolCall(name, json.dumps(args), tool_call_id=f"call-{name}")}


def tool_bot(think: FunctionModel, *, typing_interval: float = 40.0, **options: object) -> Bot:
    bot = Bot(typing_interval=typing_interval)
    tools = conversation_tools(**options)  # type: ignore[arg-type]
    serve_agent(bot, Agent(think, deps_type=ConversationDeps, toolsets=[tools]))
    return bot


async def test_the_model_reacts_with_a_tapback_then_answers() -> None:
    asked = Asked()

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Chunk]:
        asked.record(messages)
        result = tool_result(messages)
        if result is None:
            assert [tool.name for tool in info.function_tools] == [
                "react",
                "send_image",
                "ask_follow_up",
            ]
            yield call("react", kind="laugh")
        else:
            yield f"Ha! ({result})"

    async with BotHarness(tool_bot(FunctionModel(stream_function=think)), connect_event=False) as h:
        chat = h.chat()
        mine = await chat.say("why did the chicken cross the road?")
        tapback = await chat.expect_tapback("laugh")
        assert tapback.message_id == mine.id  # on the human's message
        await chat.expect_reply("Ha! (Reacted with laugh.)")
        await chat.expect_silence(0.3)
    assert len(asked.calls) == 2


async def test_the_model_sends_an_image_from_the_folder_and_no_other_file(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "sunset.png").write_bytes(tiny_png(8, 8))
    (tmp_path / "secret.txt").write_text("not for the model")
    results: list[str] = []

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Chunk]:
        result = tool_result(messages)
        if result is not None:
            results.append(result)
        if len(results) == 0:
            yield call("send_image", image="../secret.txt")  # outside the folder: refused
        elif len(results) == 1:
            yield call("send_image", image="sunset.png", caption="Tonight's sunset")
        elif len(results) == 2:
            yield call("send_image", image="https://media.example/cat.jpg")
        else:
            yield "There you go."

    bot = tool_bot(FunctionModel(stream_function=think), image_dir=folder)
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("show me a picture")
        sunset = await chat.expect_reply("Tonight's sunset", media="image/png")
        cat = await chat.expect_reply(media=True)
        await chat.expect_reply("There you go.")
    assert results[0] == "No image named '../secret.txt'. The images are: sunset.png."
    assert results[1:] == ["The image was sent.", "The image was sent."]
    assert sunset.media[0].size is not None and sunset.media[0].size > 0
    assert cat.media[0].url == "https://media.example/cat.jpg"


async def test_the_model_asks_a_follow_up_and_uses_the_answer() -> None:
    asked = Asked()

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Chunk]:
        asked.record(messages)
        result = tool_result(messages)
        if result is None:
            yield call("ask_follow_up", question="Which city?")
        else:
            yield f"{result}: sunny all week."

    # Refresh typing every 0.4 s: a bubble kept up while waiting would be back within that.
    bot = tool_bot(FunctionModel(stream_function=think), typing_interval=0.4)
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("what's the weather like?")
        await chat.expect_reply("Which city?")
        await anyio.sleep(0.8)
        assert not await h.agent.typing(chat.number)  # the bot is not "typing" at the human
        await chat.say("Lisbon")  # the answer goes to the tool, not to a new turn
        await chat.expect_reply("Lisbon: sunny all week.")
        await chat.expect_silence(0.5)
    assert len(asked.calls) == 2
    assert asked.prompts == ["what's the weather like?", "what's the weather like?"]


async def test_text_before_a_tool_call_is_sent_first_by_a_model_that_does_not_stream() -> None:
    def think(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        result = tool_result(messages)
        if result is None:
            question = ToolCallPart("ask_follow_up", {"question": "Which city?"}, "call-1")
            return ModelResponse(parts=[TextPart("Good question."), question])
        return ModelResponse(parts=[TextPart(f"{result} it is.\n\nPack an umbrella.")])

    bot = tool_bot(FunctionModel(think))  # no stream function: whole answers
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("what's the weather like?")
        await chat.expect_reply("Good question.")  # said before the tool asks
        await chat.expect_reply("Which city?")
        await chat.say("Lisbon")
        await chat.expect_reply("Lisbon it is.")  # a turn's reply comes in bubbles
        await chat.expect_reply("Pack an umbrella.")
        await chat.expect_silence(0.3)


async def test_pydantic_ais_test_model_calls_the_tools_and_answers() -> None:
    # TestModel needs no script: it calls every tool once, then answers.
    model = TestModel(custom_output_text="All done.")
    bot = tool_bot(model, images=False, ask=False)
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("hello")
        await chat.expect_tapback("love")
        await chat.expect_reply("All done.")
    assert [tool.name for tool in model.last_model_request_parameters.function_tools] == ["react"]
