"""``imbot chat`` as a subprocess against ``imbot dev`` (simulator + bot), fed through a pipe."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.devserver import (
    IMBOT,
    DevServer,
    clean_env,
    dev_server,
    echo_bot_source,
    text,
    wait_reply,
)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevServer]:
    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("echo"))
    args = [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:", "--no-reload"]
    with dev_server(args, tmp_path) as server:
        server.ready()
        yield server


def chat(
    base: str, lines: str, *extra: str, timeout: float = 40
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IMBOT, "chat", "--url", base, *extra],
        input=lines,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )


def test_chat_connects_and_shows_replies_typing_receipts_and_tapbacks(dev: DevServer) -> None:
    done = chat(dev.base_url, "connect @echo\nhello bot\n", "--phone", "+15550003001")
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    lines = out.splitlines()
    assert lines[0].startswith("imbot chat: you are +15550003001")
    assert "agents: @echo" in lines[0]
    assert "Type `connect @echo` to start" in out
    assert "— connected to @echo" in lines
    assert any(line.startswith("router: Connected to @echo") for line in lines)
    assert "  ✓ Delivered: “hello bot”" in lines
    assert "  ✓ Read: “hello bot”" in lines
    assert "@echo loved “hello bot”" in lines
    assert "… @echo is typing" in lines
    assert "@echo: echo: hello bot" in lines
    # Typing shows before the reply; the reply comes after what it answers.
    assert lines.index("… @echo is typing") < lines.index("@echo: echo: hello bot")
    # Your own lines are not echoed back as if someone else wrote them.
    assert not any(line.endswith(": hello bot") and "@echo: echo" not in line for line in lines)


def test_chat_picks_up_an_existing_conversation(dev: DevServer) -> None:
    phone = "+15550003002"
    text(dev.base_url, phone, "connect @echo")
    text(dev.base_url, phone, "first")
    wait_reply(dev.base_url, phone, "echo: first")
    done = chat(dev.base_url, "second\n", "--phone", phone, "--to", "@echo")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Connected to @echo. Type a message and press Enter; Ctrl-D quits." in lines
    assert "@echo: echo: second" in lines
    # History is not replayed: only what happened during this chat.
    assert "@echo: echo: first" not in lines
    assert "— connected to @echo" not in lines


def test_chat_reports_a_rejected_text(dev: DevServer) -> None:
    done = chat(dev.base_url, "hello\n", "--phone", "+15550003003", "--to", "nobody")
    assert done.returncode == 0
    assert "router: You're not connected to @nobody. Text connect @nobody to start." in (
        done.stdout.splitlines()
    )
