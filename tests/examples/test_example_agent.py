"""examples/agent.py offline: the scripted model behind a real pydantic-ai agent.

A burst answered once, a story in bubbles, history read back from the API, a tapback from
the model's tool; and the example under a real ``imbot dev``, answering a burst once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import pytest
from support import REPO_ROOT, load_example
from support.devserver import clean_env, dev_server, poll, text, timeline

from imbot import Bot
from imbot.testing import Conversation

# Inkbox's connect flow: the connect text stays with the router.
pytestmark = pytest.mark.imbot(connect_event=False)

BURST = ("hey", "quick q", "what's the weather in Paris?")
ANSWER = 'Got your 3 texts at once: "hey", "quick q", "what\'s the weather in Paris?".'


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch) -> Bot:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline, whatever the machine has
    sys.modules.pop("imbot_example_agent", None)  # the model is chosen when it is imported
    example = load_example("agent")
    assert example.agent.model.model_name == "offline"
    bot: Bot = example.bot
    return bot


async def test_a_burst_is_answered_once(imbot_chat: Conversation) -> None:
    for message in BURST:
        await imbot_chat.say(message)
        await anyio.sleep(0.2)
    await imbot_chat.expect_typing()
    await imbot_chat.expect_reply(ANSWER)
    await imbot_chat.expect_silence(1.0)


async def test_a_story_comes_in_bubbles_in_order(imbot_chat: Conversation) -> None:
    story: str = load_example("agent").STORY
    await imbot_chat.say("tell me a story")
    for paragraph in story.split("\n\n"):
        await imbot_chat.expect_reply(paragraph)
    await imbot_chat.expect_silence(0.5)


async def test_remembers_from_the_conversation_history(imbot_chat: Conversation) -> None:
    await imbot_chat.say("what's my name?")
    await imbot_chat.expect_reply("You haven't told me yet.")
    await imbot_chat.say("my name is Ada")
    await imbot_chat.expect_reply(regex=r'^You said "my name is Ada"')
    await imbot_chat.say("what's my name?")
    await imbot_chat.expect_reply("You're Ada.")


async def test_thanks_gets_a_tapback_then_a_reply(imbot_chat: Conversation) -> None:
    mine = await imbot_chat.say("thanks!")
    tapback = await imbot_chat.expect_tapback("love")
    assert tapback.message_id == mine.id
    await imbot_chat.expect_reply("You're welcome!")


@pytest.mark.slow
def test_imbot_dev_runs_it_offline_and_answers_a_burst_once(tmp_path: Path) -> None:
    env = clean_env()
    env.pop("OPENAI_API_KEY", None)
    phone = "+15550003001"
    app = REPO_ROOT / "examples" / "agent.py"
    args = [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"]
    with dev_server(args, cwd=tmp_path, env=env) as dev:
        base = dev.ready()
        dev.wait_line(r"@agent is running in the simulator")
        text(base, phone, "connect @agent")
        for message in BURST:
            text(base, phone, message)

        def answers() -> list[str] | None:
            items = timeline(base, phone)["items"]
            found = [
                item["text"]
                for item in items
                if item["thread"] == "agent" and item["from"] == "them" and not item.get("system")
            ]
            return found or None

        assert poll(answers, 20, "the agent's answer") == [ANSWER]
        time.sleep(1.5)  # a second turn would have answered by now
        assert answers() == [ANSWER]
        assert dev.stop() == 0, dev.output()
