"""examples/echo.py, through the test kit."""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import Conversation


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("echo").bot
    return bot


async def test_echoes_what_you_say(imbot_chat: Conversation) -> None:
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply("hi")


async def test_echoes_each_message_in_order(imbot_chat: Conversation) -> None:
    for text in ("one", "two", "three"):
        await imbot_chat.say(text)
    for text in ("one", "two", "three"):
        await imbot_chat.expect_reply(text)
    await imbot_chat.expect_silence()


@pytest.mark.imbot(connect=False, connect_event=False)
async def test_the_first_message_after_connecting_is_the_first_event(
    imbot_chat: Conversation,
) -> None:
    # Inkbox's connect flow: `connect @handle` goes to the router and never reaches the bot.
    assert "connect @testbot" not in [item.text for item in await imbot_chat.connect()]
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply("hi")


@pytest.mark.imbot(connect=False, connect_event=True)
async def test_echoes_the_connect_text_where_the_simulator_passes_it_on(
    imbot_chat: Conversation,
) -> None:
    # The simulator's option for the old flow: the connect text is the first message.
    greeting = await imbot_chat.connect()
    assert [item.text for item in greeting] == ["connect @testbot"]
