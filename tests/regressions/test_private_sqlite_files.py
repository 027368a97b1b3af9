"""The bot's SQLite inbox and state files are the owner's only (issue 10, item 10).

They hold the humans' message text. SQLite creates a database file with the umask's
mode (0644 under the usual 022), and its ``-wal`` and ``-shm`` files with the database
file's: so each was readable by every user of the machine.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from imbot.storage.sqlite import SqliteInboxStore, SqliteStateStore


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder: Path, name: str) -> dict[str, int]:
    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.glob(name + "*")}


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_new_inbox_and_state_files_are_0600(
    tmp_path: Path, synchronous: Literal["normal", "full"]
) -> None:
    shared = tmp_path / "bot.db"
    inbox = SqliteInboxStore(str(shared), synchronous=synchronous)
    state = SqliteStateStore(str(shared), synchronous=synchronous)
    alone = tmp_path / "state.db"
    state_alone = SqliteStateStore(str(alone), synchronous=synchronous)
    try:
        assert await inbox.add("evt_1", b'{"text": "private"}')
        await state.save("conv-1", {"step": 1})
        await state_alone.save("conv-1", {"step": 1})
        for folder_file in (shared, alone):
            modes = _modes(tmp_path, folder_file.name)
            assert {folder_file.name, folder_file.name + "-wal"} <= modes.keys()
            assert modes == dict.fromkeys(modes, 0o600)
    finally:
        await inbox.close()
        await state.close()
        await state_alone.close()


async def test_an_existing_file_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    path.write_bytes(b"")
    path.chmod(0o640)  # say, readable by a backup group
    inbox = SqliteInboxStore(str(path))
    try:
        assert await inbox.add("evt_1", b"{}")
    finally:
        await inbox.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
