"""ctx.history(): both sides of a conversation from the API's message list, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imbot import HistoryEntry
from imbot.bot.history import read_history, to_openai_messages
from imbot.client import InkboxClient
from imbot.errors import InvalidRequest
from imbot.models import Message
from imbot.testing import eventually, simulated
from imbot.testing.events import message_dict

HUMAN = "+15555550177"
AT = datetime(2026, 6, 9, 14, 33, tzinfo=UTC)


class CountingClient(InkboxClient):
    """A real client that counts the pages of messages it asks for."""

    pages = 0

    async def list_messages(self, **query: Any) -> list[Message]:
        self.pages += 1
        return await super().list_messages(**query)


def entry(role: str, text: str, media: list[str] | None = None) -> HistoryEntry:
    return HistoryEntry(role, text, media or [], AT, f"m-{text}")  # type: ignore[arg-type]


def test_an_entry_from_each_side() -> None:
    inbound = Message.model_validate(
        message_dict("hi", media=[{"url": "https://x.test/cat.jpg"}], message_id="m-1")
    )
    outbound = Message.model_validate(message_dict("hello", direction="outbound"))
    first, second = HistoryEntry.from_message(inbound), HistoryEntry.from_message(outbound)
    assert (first.role, first.text, first.media, first.message_id) == (
        "user",
        "hi",
        ["https://x.test/cat.jpg"],
        "m-1",
    )
    assert first.at == inbound.created_at
    assert (second.role, second.text, second.media) == ("assistant", "hello", [])


def test_openai_messages_merge_one_sides_run_and_name_attachments() -> None:
    entries = [
        entry("user", "hey"),
        entry("user", "quick q", ["https://x.test/a.png"]),
        entry("assistant", "Sure."),
        entry("assistant", "Ask away."),
        entry("user", ""),  # media-less and text-less: nothing to say
        entry("user", "weather?"),
    ]
    assert to_openai_messages(entries) == [
        {"role": "user", "content": "hey\n\nquick q\n[attachment: https://x.test/a.png]"},
        {"role": "assistant", "content": "Sure.\n\nAsk away."},
        {"role": "user", "content": "weather?"},
    ]
    assert [m["content"] for m in to_openai_messages(entries, merge=False)] == [
        "hey",
        "quick q\n[attachment: https://x.test/a.png]",
        "Sure.",
        "Ask away.",
        "weather?",
    ]


async def test_history_reads_both_sides_oldest_first_in_one_request() -> None:
    async with simulated("historian") as agent:
        phone = agent.phone(HUMAN)
        await agent.connect(HUMAN)
        await phone.text("one", to=agent.handle)
        conversation_id = (await agent.client.list_conversations())[0].id
        await agent.client.send_message(conversation_id=conversation_id, text="two")
        await phone.text("three", to=agent.handle, media_url="https://x.test/three.png")
        await agent.client.send_message(conversation_id=conversation_id, text="four")

        async with CountingClient(api_key=agent.api_key, base_url=agent.sim.base_url) as client:
            entries = await read_history(client, conversation_id, limit=3)
            assert client.pages == 1
            everything = await read_history(client, conversation_id, limit=50)
            assert client.pages == 2
        assert [(e.role, e.text) for e in entries] == [
            ("assistant", "two"),
            ("user", "three"),
            ("assistant", "four"),
        ]
        assert entries[1].media == ["https://x.test/three.png"]
        assert [e.at for e in entries] == sorted(e.at for e in entries)
        assert everything[-3:] == entries
        assert [e.text for e in everything if e.text in {"one", "two"}] == ["one", "two"]

        # A message that never reached the human is not part of what they saw.
        put = await agent.http.put(f"/sim/v1/phones/{HUMAN}", json={"unreachable": True})
        assert put.status == 200
        lost = await agent.client.send_message(conversation_id=conversation_id, text="lost")
        await eventually(lambda: agent.client.get_message(lost.id), lambda m: m.failed)
        after = await read_history(agent.client, conversation_id, limit=50)
        assert after == everything


async def test_a_history_limit_below_one_is_refused() -> None:
    async with simulated("historian") as agent:
        with pytest.raises(InvalidRequest, match="at least 1"):
            await read_history(agent.client, "any", limit=0)
