"""examples/commands.py, through the test kit."""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import Conversation


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("commands").bot
    return bot


@pytest.mark.imbot(connect=False)
async def test_greets_on_connect(imbot_chat: Conversation) -> None:
    greeting = await imbot_chat.connect()
    assert len(greeting) == 1
    assert greeting[0].text == "Hi! I'm a command bot. Text help to see what I can do."


async def test_help_lists_commands_with_their_arguments(imbot_chat: Conversation) -> None:
    await imbot_chat.say("help")
    reply = await imbot_chat.expect_reply(regex=r"^Commands:")
    assert reply.text is not None
    assert "add <a:float> <b:float> — Add two numbers." in reply.text
    assert "remind <minutes:int> <text>" in reply.text
    assert "(also: r)" in reply.text


async def test_add_takes_typed_arguments(imbot_chat: Conversation) -> None:
    await imbot_chat.say("/add 2 3.5")
    await imbot_chat.expect_reply("2 + 3.5 = 5.5")


async def test_wrong_arguments_get_the_usage_line(imbot_chat: Conversation) -> None:
    await imbot_chat.say("add two 3")
    await imbot_chat.expect_reply(regex=r"^Usage: add <a:float> <b:float>\n")


async def test_remind_answers_then_reminds(imbot_chat: Conversation) -> None:
    await imbot_chat.say("r 0 stretch your legs")  # the alias, 0 minutes: right away
    await imbot_chat.expect_reply("OK, I'll remind you in 0 min: stretch your legs")
    await imbot_chat.expect_reply("⏰ stretch your legs")


async def test_unknown_text_gets_a_hint(imbot_chat: Conversation) -> None:
    await imbot_chat.say("what can you do?")
    await imbot_chat.expect_reply(contains="Text help")
