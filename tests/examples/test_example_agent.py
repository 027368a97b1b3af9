"""examples/agent.py offline: the rule-based brain, memory, typing.

In Inkbox's connect flow: the connect text stays with the router, and the agent introduces
itself on the human's first message, which it then answers as usual.
"""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import Conversation

pytestmark = pytest.mark.imbot(connect_event=False)

INTRODUCTION = "Hi! I'm an AI agent. Ask me anything, or text reset to clear my memory."


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch) -> Bot:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline, whatever the machine has
    bot: Bot = load_example("agent").bot
    return bot


@pytest.mark.imbot(connect=False)
async def test_introduces_itself_then_answers_the_first_message(imbot_chat: Conversation) -> None:
    # The connect text stays with the router: the bot has not heard of the human yet.
    assert INTRODUCTION not in [item.text for item in await imbot_chat.connect()]
    await imbot_chat.say("hello")
    await imbot_chat.expect_reply(INTRODUCTION)
    await imbot_chat.expect_reply(regex=r"^Hello! \(I'm running offline")
    await imbot_chat.say("hello")  # not the first message any more: no introduction
    await imbot_chat.expect_reply(regex=r"^Hello! \(I'm running offline")


async def test_types_then_answers(imbot_chat: Conversation) -> None:
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply(INTRODUCTION)
    await imbot_chat.expect_reply(regex=r"^Hello! \(I'm running offline")
    await imbot_chat.say("hello")
    await imbot_chat.expect_typing()
    await imbot_chat.expect_reply(regex=r"^Hello! \(I'm running offline")


async def test_remembers_the_conversation(imbot_chat: Conversation) -> None:
    await imbot_chat.say("my name is Ada")
    await imbot_chat.expect_reply(INTRODUCTION)
    await imbot_chat.expect_reply("Nice to meet you, Ada!")
    await imbot_chat.say("what's my name?")
    await imbot_chat.expect_reply("You're Ada.")
    await imbot_chat.say("reset")
    await imbot_chat.expect_reply("Memory cleared. What's on your mind?")
    await imbot_chat.say("what's my name?")
    await imbot_chat.expect_reply("You haven't told me yet.")
