"""examples/agent.py with a key: pydantic-ai's OpenAI model against a fake server on 127.0.0.1.

The fake speaks the chat completions API as OpenAI-compatible servers do, streaming its
answers as server-sent events, and keeps every request for the test to read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from support import load_example

from imbot import Bot
from imbot.ai import DEFAULT_APOLOGY
from imbot.testing import Conversation

pytestmark = pytest.mark.imbot(connect_event=False)


@dataclass
class FakeOpenAI:
    url: str
    requests: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """POST /v1/chat/completions: streams the last message back, with how many it got."""
    fake = FakeOpenAI("")

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fake.requests.append((request.headers.get("Authorization"), body))
        last = body["messages"][-1]["content"]
        if "fail" in last:
            # Like an overloaded server that says not to retry, so the test does not wait.
            return web.json_response(
                {"error": {"message": "overloaded"}},
                status=503,
                headers={"x-should-retry": "false"},
            )
        answer = f"model: {last} ({len(body['messages'])} messages)"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        model = body["model"]
        await response.write(chunk(model, {"role": "assistant", "content": ""}))
        for word in answer.split(" "):
            await response.write(chunk(model, {"content": word + " "}))
        await response.write(chunk(model, {}, finish="stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

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
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("OPENAI_MODEL", "tiny-test-model")
    sys.modules.pop("imbot_example_agent", None)  # the model is chosen when it is imported
    bot: Bot = load_example("agent").bot
    return bot


async def test_streams_the_model_with_the_conversation(
    imbot_chat: Conversation, fake_openai: FakeOpenAI
) -> None:
    await imbot_chat.say("hi")
    await imbot_chat.expect_typing()
    await imbot_chat.expect_reply("model: hi (2 messages)")  # instructions + the turn
    await imbot_chat.say("and again")
    await imbot_chat.expect_reply("model: and again (4 messages)")  # + the first exchange

    auth, body = fake_openai.requests[-1]
    assert auth == "Bearer sk-test"
    assert body["model"] == "tiny-test-model"
    assert body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert "iMessage" in body["messages"][0]["content"]
    assert body["messages"][1]["content"] == "hi"
    assert body["messages"][2]["content"] == "model: hi (2 messages)"
    # The conversation tools are offered to the model.
    names = [tool["function"]["name"] for tool in body["tools"]]
    assert names == ["react", "send_image", "ask_follow_up"]


@pytest.mark.imbot(raise_handler_errors=False)
async def test_apologizes_when_the_model_fails(
    imbot_chat: Conversation, fake_openai: FakeOpenAI
) -> None:
    await imbot_chat.say("please fail")
    await imbot_chat.expect_reply(DEFAULT_APOLOGY)
    await imbot_chat.say("ok now")
    # The history is the conversation as the human saw it: the apology included.
    await imbot_chat.expect_reply("model: ok now (4 messages)")
    _, body = fake_openai.requests[-1]
    assert [m["content"] for m in body["messages"][1:]] == [
        "please fail",
        DEFAULT_APOLOGY,
        "ok now",
    ]
    assert len(fake_openai.requests) == 2  # the failed request was not retried
