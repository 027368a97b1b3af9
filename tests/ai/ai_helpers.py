"""What the imbot.ai tests share: reading what a FunctionModel was asked, and the bot's inbox.

The models in these tests are pydantic-ai ``FunctionModel``s: plain functions that get the
messages a real model would get. ``Asked`` records each call, so a test can say how many
runs there were and what each one saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from pydantic_ai import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from imbot.testing import BotHarness, eventually


def prompt_of(messages: list[ModelMessage]) -> str:
    """The user prompt of the run: the text of the first request's prompt after the history."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    content = part.content
                    return content if isinstance(content, str) else str(content[0])
    raise AssertionError(f"no user prompt in {messages!r}")


def history_of(messages: list[ModelMessage]) -> list[tuple[str, str]]:
    """The conversation the model was shown before the prompt, as (role, text) pairs."""
    pairs: list[tuple[str, str]] = []
    for message in messages[:-1]:
        if isinstance(message, ModelRequest):
            pairs.extend(
                ("user", str(p.content)) for p in message.parts if isinstance(p, UserPromptPart)
            )
        elif isinstance(message, ModelResponse):
            pairs.extend(("assistant", p.content) for p in message.parts if isinstance(p, TextPart))
    return pairs


@dataclass
class Asked:
    """Every call a model got: the messages of each, in order."""

    calls: list[list[ModelMessage]] = field(default_factory=list)

    def record(self, messages: list[ModelMessage]) -> str:
        """Note a call; returns its prompt."""
        self.calls.append(list(messages))
        return prompt_of(messages)

    @property
    def prompts(self) -> list[str]:
        """The prompt of each call."""
        return [prompt_of(call) for call in self.calls]


async def bot_received(harness: BotHarness, count: int) -> None:
    """Wait until the bot has accepted ``count`` messages (webhook deliveries answered 200)."""
    agent = harness.agent
    url = f"{agent.sim.base_url}/api/v1/webhooks/deliveries"
    query = {"event_type": "imessage.received", "success": "true"}

    async with aiohttp.ClientSession(headers={"X-API-Key": agent.api_key}) as http:

        async def accepted() -> int:
            async with http.get(url, params=query) as response:
                response.raise_for_status()
                return len((await response.json())["deliveries"])

        await eventually(accepted, lambda n: n >= count, timeout=5.0)
