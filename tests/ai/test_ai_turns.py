"""serve_agent in the simulator: a burst answered once, interruptions, bubbles, no network.

The models are pydantic-ai ``FunctionModel``s that stream; each test's model records what
it was asked (``Asked``), so the test checks how many runs there were and what each saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from ai_helpers import Asked, bot_received, history_of
from pydantic_ai import Agent, ImageUrl, ModelMessage, ModelRequest
from pydantic_ai.models.function import AgentInfo, FunctionModel

from imbot import Bot
from imbot.ai import ConversationDeps, serve_agent
from imbot.testing import BotHarness, tiny_png

BURST = ("hey", "quick q", "what's the weather in Paris?")


def agent_bot(think: FunctionModel) -> Bot:
    bot = Bot()
    serve_agent(bot, Agent(think, deps_type=ConversationDeps))
    return bot


async def test_three_texts_a_moment_apart_make_one_run_and_one_answer() -> None:
    asked = Asked()

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        prompt = asked.record(messages)
        yield f"{len(prompt.splitlines())} texts, "
        yield "one answer."

    async with BotHarness(
        agent_bot(FunctionModel(stream_function=think)), connect_event=False
    ) as h:
        chat = h.chat()
        for text in BURST:
            await chat.say(text)
            await anyio.sleep(0.3)  # a person typing the next text
        await chat.expect_typing()
        await chat.expect_reply("3 texts, one answer.")
        await chat.expect_silence(1.0)
    assert asked.prompts == ["\n".join(BURST)]


async def test_a_text_while_the_model_thinks_restarts_the_turn_with_both() -> None:
    asked = Asked()
    thinking = anyio.Event()
    interrupted = anyio.Event()

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        prompt = asked.record(messages)
        if len(asked.calls) == 1:
            thinking.set()
            try:
                await anyio.sleep(30)  # a slow model: the human speaks again meanwhile
            except BaseException:
                interrupted.set()
                raise
        yield f"About {prompt!r}: sunny."

    bot = agent_bot(FunctionModel(stream_function=think))
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("what's the weather?")
        with anyio.fail_after(5):
            await thinking.wait()
        await chat.say("in Paris, I mean")
        with anyio.fail_after(5):
            await interrupted.wait()
        reply = await chat.expect_reply(contains="sunny")
        await chat.expect_silence(1.0)
    assert reply.text == 'About "what\'s the weather?\\nin Paris, I mean": sunny.'
    assert asked.prompts == ["what's the weather?", "what's the weather?\nin Paris, I mean"]
    assert len(h.errors) == 0  # the cancelled run is not an error


async def test_a_text_after_the_first_bubble_waits_for_the_next_turn() -> None:
    asked = Asked()
    go_on = anyio.Event()

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        prompt = asked.record(messages)
        if len(asked.calls) == 1:
            yield "First, the sun.\n\nSecond"  # the first bubble is complete: it goes out
            await go_on.wait()
            yield ", the rain."
        else:
            yield f"Now {prompt!r}."

    bot = agent_bot(FunctionModel(stream_function=think))
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("tell me two things")
        await chat.expect_reply("First, the sun.")
        await chat.say("and a third?")
        await bot_received(h, 2)  # the bot has it while the first run is still at work
        go_on.set()
        await chat.expect_reply("Second, the rain.")  # the first run finished
        await chat.expect_reply("Now 'and a third?'.")  # then the next turn
        await chat.expect_silence(0.5)
    assert asked.prompts == ["tell me two things", "and a third?"]
    # The second run saw the first exchange, both bubbles of the answer.
    assert history_of(asked.calls[1]) == [
        ("user", "tell me two things"),
        ("assistant", "First, the sun.\n\nSecond, the rain."),
    ]


async def test_the_turns_images_and_tapbacks_reach_the_model() -> None:
    seen: list[object] = []

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        request = messages[-1]
        assert isinstance(request, ModelRequest)
        seen.append(request.parts[-1].content)
        yield f"answer {len(seen)}"

    bot = agent_bot(FunctionModel(stream_function=think))
    async with BotHarness(bot, connect_event=False) as h:
        chat = h.chat()
        await chat.say("hi")
        await chat.expect_reply("answer 1")
        photo = await chat.say("look at this", media=tiny_png(), content_type="image/png")
        await chat.tapback("love")  # on the bot's answer, while the turn gathers
        await chat.expect_reply("answer 2")
    text, image = seen[1]  # type: ignore[misc]
    assert text == "look at this\n[tapback: love]"
    assert isinstance(image, ImageUrl)
    assert image.url == photo.media[0].url
    assert image.media_type == "image/png"
