"""examples/stateful.py, through the test kit."""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import BotHarness, Conversation


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("stateful").bot
    return bot


async def sign_up(chat: Conversation, name: str, city: str) -> None:
    await chat.say(name)
    await chat.expect_reply(f"Nice to meet you, {name}! Which city are you in?")
    await chat.say(city)
    await chat.expect_reply(f"Thanks! I'll remember you, {name} from {city}.")


@pytest.mark.imbot(connect=False)
async def test_signs_up_then_remembers(imbot_chat: Conversation) -> None:
    # The connect text is the first message: the bot starts the sign-up at once.
    greeting = await imbot_chat.connect()
    assert [g.text for g in greeting] == ["Hi! I don't know you yet. What's your name?"]
    await sign_up(imbot_chat, "Ada", "Paris")
    await imbot_chat.say("hi again")
    await imbot_chat.expect_reply("Welcome back, Ada from Paris!")


async def test_each_human_has_their_own_state(imbot_harness: BotHarness) -> None:
    ada, bob = imbot_harness.chat(), imbot_harness.chat("+15550001111")
    await bob.connect()  # both dialogs are open at once
    await sign_up(bob, "Bob", "Lyon")
    await sign_up(ada, "Ada", "Oslo")
    await bob.say("hey")
    await bob.expect_reply("Welcome back, Bob from Lyon!")
    await ada.say("hey")
    await ada.expect_reply("Welcome back, Ada from Oslo!")


async def test_forget_starts_over(imbot_chat: Conversation) -> None:
    await sign_up(imbot_chat, "Ada", "Rome")
    await imbot_chat.say("forget")
    await imbot_chat.expect_reply("Done, I forgot you. Text me to sign up again.")
    await imbot_chat.say("hello")
    await imbot_chat.expect_reply(contains="What's your name?")
