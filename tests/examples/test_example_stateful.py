"""examples/stateful.py, through the test kit, in Inkbox's connect flow."""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import BotHarness, Conversation

# The connect text stays with the router: the human's first message starts the sign-up.
pytestmark = pytest.mark.imbot(connect_event=False)

QUESTION = "Hi! I don't know you yet. What's your name?"


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("stateful").bot
    return bot


async def answer(chat: Conversation, name: str, city: str) -> None:
    await chat.say(name)
    await chat.expect_reply(f"Nice to meet you, {name}! Which city are you in?")
    await chat.say(city)
    await chat.expect_reply(f"Thanks! I'll remember you, {name} from {city}.")


async def sign_up(chat: Conversation, name: str, city: str) -> None:
    await chat.say("hi")
    await chat.expect_reply(QUESTION)
    await answer(chat, name, city)


@pytest.mark.imbot(connect=False)
async def test_signs_up_then_remembers(imbot_chat: Conversation) -> None:
    # Nothing reaches the bot until the human writes in the new thread.
    assert QUESTION not in [item.text for item in await imbot_chat.connect()]
    await sign_up(imbot_chat, "Ada", "Paris")
    await imbot_chat.say("hi again")
    await imbot_chat.expect_reply("Welcome back, Ada from Paris!")


async def test_each_human_has_their_own_state(imbot_harness: BotHarness) -> None:
    ada, bob = imbot_harness.chat(), imbot_harness.chat("+15550001111")
    await bob.connect()
    for chat in (bob, ada):  # both dialogs are open at once
        await chat.say("hi")
        await chat.expect_reply(QUESTION)
    await answer(bob, "Bob", "Lyon")
    await answer(ada, "Ada", "Oslo")
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
