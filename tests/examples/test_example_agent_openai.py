"""examples/agent.py against a small fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from support import load_example

from imbot import Bot
from imbot.testing import Conversation

# Inkbox's connect flow: the connect text stays with the router, and the agent introduces
# itself on the human's first message before answering it.
pytestmark = pytest.mark.imbot(connect_event=False)

INTRODUCTION = "Hi! I'm an AI agent. Ask me anything, or text reset to clear my memory."


@dataclass
class FakeOpenAI:
    url: str
    requests: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """POST /v1/chat/completions: answers with the last message and how many it got."""
    fake = FakeOpenAI("")

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        fake.requests.append((request.headers.get("Authorization"), body))
        last = body["messages"][-1]["content"]
        if "fail" in last:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        answer = f"model: {last} ({len(body['messages'])} messages)"
        return web.json_response(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}/v1"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
def bot(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Bot:
    # The agent reads these when it starts, i.e. when the harness starts it.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("OPENAI_MODEL", "tiny-test-model")
    bot: Bot = load_example("agent").bot
    return bot


async def test_calls_the_model_with_memory(
    imbot_chat: Conversation, fake_openai: FakeOpenAI
) -> None:
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply(INTRODUCTION)
    await imbot_chat.expect_typing()
    await imbot_chat.expect_reply("model: hi (2 messages)")  # system + user
    await imbot_chat.say("and again")
    await imbot_chat.expect_reply("model: and again (4 messages)")  # + the first exchange

    auth, body = fake_openai.requests[-1]
    assert auth == "Bearer sk-test"
    assert body["model"] == "tiny-test-model"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"] == "model: hi (2 messages)"


async def test_apologizes_when_the_model_fails(
    imbot_chat: Conversation, fake_openai: FakeOpenAI
) -> None:
    await imbot_chat.say("please fail")
    await imbot_chat.expect_reply(INTRODUCTION)
    await imbot_chat.expect_reply("Sorry, I can't think right now. Try again in a minute.")
    await imbot_chat.say("ok now")
    # The failed turn was not remembered: system + this user message only.
    await imbot_chat.expect_reply("model: ok now (2 messages)")
