"""examples/tapbacks.py, through the test kit."""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import Conversation


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("tapbacks").bot
    return bot


@pytest.mark.parametrize(
    ("text", "kind"),
    [("I love this", "love"), ("Thanks!", "love"), ("haha good one", "laugh")],
)
async def test_reacts_to_what_you_say(imbot_chat: Conversation, text: str, kind: str) -> None:
    said = await imbot_chat.say(text)
    tapback = await imbot_chat.expect_tapback(kind)
    assert tapback.message_id == said.id
    await imbot_chat.expect_silence()  # a tapback, no text


async def test_answers_other_messages(imbot_chat: Conversation) -> None:
    await imbot_chat.say("what is this?")
    await imbot_chat.expect_reply(contains="watch my tapbacks")


async def test_answers_a_love_tapback(imbot_chat: Conversation) -> None:
    await imbot_chat.say("hello")
    await imbot_chat.expect_reply()
    await imbot_chat.tapback("love")  # on the bot's last message
    await imbot_chat.expect_reply("❤️ right back at you!")


async def test_answers_any_other_tapback(imbot_chat: Conversation) -> None:
    await imbot_chat.say("hello")
    await imbot_chat.expect_reply()
    await imbot_chat.tapback("question")
    await imbot_chat.expect_reply("Thanks for the question tapback.")
