"""examples/agent.py offline: the rule-based brain, memory, typing."""

from __future__ import annotations

import pytest
from support import load_example

from imbot import Bot
from imbot.testing import Conversation


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch) -> Bot:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline, whatever the machine has
    bot: Bot = load_example("agent").bot
    return bot


@pytest.mark.imbot(connect=False)
async def test_introduces_itself_on_connect(imbot_chat: Conversation) -> None:
    greeting = await imbot_chat.connect()
    assert [g.text for g in greeting] == [
        "Hi! I'm an AI agent. Ask me anything, or text reset to clear my memory."
    ]


async def test_types_then_answers(imbot_chat: Conversation) -> None:
    await imbot_chat.say("hello")
    await imbot_chat.expect_typing()
    await imbot_chat.expect_reply(regex=r"^Hello! \(I'm running offline")


async def test_remembers_the_conversation(imbot_chat: Conversation) -> None:
    await imbot_chat.say("my name is Ada")
    await imbot_chat.expect_reply("Nice to meet you, Ada!")
    await imbot_chat.say("what's my name?")
    await imbot_chat.expect_reply("You're Ada.")
    await imbot_chat.say("reset")
    await imbot_chat.expect_reply("Memory cleared. What's on your mind?")
    await imbot_chat.say("what's my name?")
    await imbot_chat.expect_reply("You haven't told me yet.")
