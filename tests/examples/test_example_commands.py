"""examples/commands.py, through the test kit, in Inkbox's connect flow.

The human's ``connect @handle`` goes to the router and never reaches the bot; the human's
first message in the new thread is the bot's first event, and the greeting runs on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import Conversation

pytestmark = pytest.mark.imbot(connect_event=False)

GREETING = "Hi! I'm a command bot. Text help to see what I can do."


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("commands").bot
    return bot


@pytest.fixture
async def chat(imbot_chat: Conversation) -> AsyncIterator[Conversation]:
    """The default human, connected and past the greeting."""
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply(GREETING)
    yield imbot_chat


@pytest.mark.imbot(connect=False)
async def test_greets_on_the_first_message_after_connecting(imbot_chat: Conversation) -> None:
    # The connect text stays with the router: the bot has not heard of the human yet.
    assert GREETING not in [item.text for item in await imbot_chat.connect()]
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply(GREETING)
    await imbot_chat.expect_silence()  # the fallback does not answer the first message again
    await imbot_chat.say("hi again")
    await imbot_chat.expect_reply("I don't know that one. Text help to see the commands.")


async def test_a_first_command_is_greeted_then_answered(imbot_chat: Conversation) -> None:
    await imbot_chat.say("add 1 2")
    await imbot_chat.expect_reply(GREETING)
    await imbot_chat.expect_reply("1 + 2 = 3")


async def test_help_lists_commands_with_their_arguments(chat: Conversation) -> None:
    await chat.say("help")
    reply = await chat.expect_reply(regex=r"^Commands:")
    assert reply.text is not None
    assert "add <a:float> <b:float> — Add two numbers." in reply.text
    assert "remind <minutes:int> <text>" in reply.text
    assert "(also: r)" in reply.text
    assert "connect" not in reply.text


async def test_add_takes_typed_arguments(chat: Conversation) -> None:
    await chat.say("/add 2 3.5")
    await chat.expect_reply("2 + 3.5 = 5.5")


async def test_wrong_arguments_get_the_usage_line(chat: Conversation) -> None:
    await chat.say("add two 3")
    await chat.expect_reply(regex=r"^Usage: add <a:float> <b:float>\n")


async def test_remind_answers_then_reminds(chat: Conversation) -> None:
    await chat.say("r 0 stretch your legs")  # the alias, 0 minutes: right away
    await chat.expect_reply("OK, I'll remind you in 0 min: stretch your legs")
    await chat.expect_reply("⏰ stretch your legs")


async def test_unknown_text_gets_a_hint(chat: Conversation) -> None:
    await chat.say("what can you do?")
    await chat.expect_reply(contains="Text help")
