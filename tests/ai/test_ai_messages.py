"""imbot.ai.messages: the conversation's history as pydantic-ai messages (pure, no bot)."""

from __future__ import annotations

import subprocess
import sys

from pydantic_ai import ModelRequest, ModelResponse, TextPart, UserPromptPart

from imbot.ai import history_messages
from imbot.bot.history import HistoryEntry


def user(text: str, message_id: str = "", media: list[str] | None = None) -> HistoryEntry:
    return HistoryEntry("user", text, media or [], message_id=message_id)


def bot(text: str, message_id: str = "") -> HistoryEntry:
    return HistoryEntry("assistant", text, message_id=message_id)


def shape(messages: list[object]) -> list[tuple[str, list[str]]]:
    """Each message as (kind, its texts), for comparing."""
    out: list[tuple[str, list[str]]] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            texts = [str(p.content) for p in message.parts if isinstance(p, UserPromptPart)]
            out.append(("request", texts))
        else:
            assert isinstance(message, ModelResponse)
            out.append(("response", [p.content for p in message.parts if isinstance(p, TextPart)]))
    return out


def test_both_sides_in_order_with_runs_of_one_side_together() -> None:
    entries = [
        user("hey"),
        user("quick q"),
        bot("Sure, go ahead."),
        bot("I'm listening."),
        user("what's 2+2?"),
        bot("4"),
    ]
    assert shape(history_messages(entries)) == [
        ("request", ["hey", "quick q"]),
        ("response", ["Sure, go ahead.\n\nI'm listening."]),
        ("request", ["what's 2+2?"]),
        ("response", ["4"]),
    ]


def test_the_turn_is_left_out_and_attachments_are_named() -> None:
    entries = [
        user("look", "m1", media=["https://media.example/cat.png"]),
        bot("Cute!", "m2"),
        user("", "m3"),  # nothing to say: dropped
        user("and this?", "m4"),
        user("and that?", "m5"),
    ]
    messages = history_messages(entries, exclude={"m4", "m5"})
    assert shape(messages) == [
        ("request", ["look\n[attachment: https://media.example/cat.png]"]),
        ("response", ["Cute!"]),
    ]


def test_a_history_that_starts_with_the_bot() -> None:
    assert shape(history_messages([bot("Hi! I'm a bot."), user("hi")])) == [
        ("response", ["Hi! I'm a bot."]),
        ("request", ["hi"]),
    ]


def test_without_pydantic_ai_the_error_names_the_extra() -> None:
    # A None entry in sys.modules makes the import fail as if the package were absent.
    code = (
        "import sys; sys.modules['pydantic_ai'] = None\n"
        "from imbot.errors import ConfigError\n"
        "try:\n"
        "    import imbot.ai\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'imbot-kit[ai]'" in result.stdout
