"""``imbot dead-letters``: list and replay the events a bot gave up on, from the inbox file."""

from __future__ import annotations

import json
import pathlib

import anyio
import pytest

from imbot.cli import main
from imbot.storage import SqliteInboxStore


async def bury(path: pathlib.Path, *event_ids: str) -> None:
    store = SqliteInboxStore(str(path))
    try:
        for event_id in event_ids:
            assert await store.add(event_id, b'{"id": "%s"}' % event_id.encode())
            await store.failed(event_id, "ConnectError: refused")
            await store.dead_letter(
                event_id, reason="deadline", error="ConnectError: refused", attempts=7
            )
    finally:
        await store.close()


async def pending(path: pathlib.Path) -> list[str]:
    store = SqliteInboxStore(str(path))
    try:
        return [item.event_id for item in await store.pending()]
    finally:
        await store.close()


def test_list_shows_each_dead_letter_and_replay_makes_it_pending(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bot.db"
    anyio.run(bury, path, "evt_a", "evt_b")
    url = f"sqlite:///{path}"
    assert main(["dead-letters", "list", "--inbox", url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event_id"], r["reason"], r["attempts"]) for r in rows] == [
        ("evt_a", "deadline", 7),
        ("evt_b", "deadline", 7),
    ]
    assert main(["dead-letters", "list", "--inbox", url]) == 0
    text = capsys.readouterr().out
    assert "evt_a" in text and "ConnectError: refused" in text
    assert anyio.run(pending, path) == []
    assert main(["dead-letters", "replay", "evt_b", "--inbox", url]) == 0
    assert "1 event(s) pending again" in capsys.readouterr().out
    assert anyio.run(pending, path) == ["evt_b"]
    assert main(["dead-letters", "replay", "--all", "--inbox", url]) == 0
    assert anyio.run(pending, path) == ["evt_a", "evt_b"]  # in arrival order


def test_replay_of_an_unknown_id_or_a_memory_inbox_fails_with_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    assert main(["dead-letters", "replay", "evt_nope", "--inbox", url]) == 2
    assert "no dead letter with id evt_nope" in capsys.readouterr().err
    assert main(["dead-letters", "replay", "--inbox", url]) == 2
    assert "EVENT_ID... or --all" in capsys.readouterr().err
    assert main(["dead-letters", "list", "--inbox", "memory://"]) == 2
    assert "durable inbox" in capsys.readouterr().err
