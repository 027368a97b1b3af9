"""The SQLite engines, on real files in tmp_path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from imbot.bot.inbox import PendingEvent, open_inbox
from imbot.bot.state import load_state, open_state_store
from imbot.storage import SqliteInboxStore, SqliteStateStore, sqlite_engine


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_dedupe_and_pending_survive_close_and_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    with anyio.fail_after(10):
        inbox = open_inbox(url)
        assert await inbox.accept("evt_1", b"one")
        assert await inbox.accept("evt_2", b"two")
        assert await inbox.accept("evt_3", b"three")
        assert not await inbox.accept("evt_2", b"two")
        await inbox.complete("evt_2")
        await inbox.close()

        reopened = open_inbox(url)
        assert await reopened.pending() == [
            PendingEvent("evt_1", b"one"),
            PendingEvent("evt_3", b"three"),
        ]
        # Ids (completed or not) are still known after the restart.
        assert not await reopened.accept("evt_1", b"one")
        assert not await reopened.accept("evt_2", b"two")
        assert await reopened.accept("evt_4", b"four")
        await reopened.close()


async def test_accepted_events_survive_a_killed_process(tmp_path: Path) -> None:
    # A child process accepts events, completes one, then kills itself with SIGKILL: no close,
    # no atexit, no flush. Whatever accept returned True for must be pending afterwards.
    db = tmp_path / "crash.db"
    script = textwrap.dedent(
        f"""
        import os, signal, anyio
        from imbot.bot.inbox import open_inbox

        async def main():
            inbox = open_inbox("sqlite:///{db}")
            for i in range(50):
                assert await inbox.accept(f"evt_{{i}}", f"body {{i}}".encode())
            await inbox.complete("evt_7")
            print("accepted", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        anyio.run(main)
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-c", script], env=env, check=False, stderr=subprocess.STDOUT
        )
    assert result.returncode == -9, result.stdout.decode()
    assert result.stdout.strip() == b"accepted"
    with anyio.fail_after(10):
        inbox = open_inbox(f"sqlite:///{db}")
        pending = await inbox.pending()
        assert [p.event_id for p in pending] == [f"evt_{i}" for i in range(50) if i != 7]
        assert pending[0].raw == b"body 0"
        assert not await inbox.accept("evt_7", b"")
        await inbox.close()


async def test_window_is_bounded_by_count_but_keeps_pending_events(tmp_path: Path) -> None:
    store = SqliteInboxStore(str(tmp_path / "bot.db"), max_ids=10)
    with anyio.fail_after(10):
        await store.add("evt_pending", b"keep me")
        for i in range(30):
            await store.add(f"evt_{i}", b"")
            await store.complete(f"evt_{i}")
        await store.prune()
        assert await store.count() == 11  # the newest 10, plus the pending one
        assert await store.pending() == [PendingEvent("evt_pending", b"keep me")]
        assert await store.add("evt_0", b"")  # forgotten, so accepted again
        assert not await store.add("evt_29", b"")  # still in the window
        await store.close()


async def test_window_is_bounded_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteInboxStore(str(tmp_path / "bot.db"), retention=3600, clock=clock)
    with anyio.fail_after(10):
        await store.add("evt_old", b"")
        await store.complete("evt_old")
        await store.add("evt_old_pending", b"still to do")
        clock.now += 3601
        await store.add("evt_new", b"")
        await store.complete("evt_new")
        await store.prune()
        assert await store.add("evt_old", b"again")  # expired from the window
        assert not await store.add("evt_new", b"")
        assert not await store.add("evt_old_pending", b"")  # pending ids never expire
        await store.close()


async def test_pruning_runs_as_events_arrive(tmp_path: Path) -> None:
    store = SqliteInboxStore(str(tmp_path / "bot.db"), max_ids=50)
    with anyio.fail_after(30):
        for i in range(1000):
            await store.add(f"evt_{i}", b"x" * 100)
            await store.complete(f"evt_{i}")
        # Pruning is incremental (a bounded chunk every few adds), so the table stays near
        # the bound without a full prune() call.
        assert await store.count() <= 50 + 128
        await store.close()


async def test_complete_drops_the_body(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = SqliteInboxStore(str(path))
    with anyio.fail_after(10):
        await store.add("evt_1", b"a body")
        await store.complete("evt_1")
        await store.close()
    with sqlite3.connect(path) as conn:
        bodies = conn.execute("SELECT COUNT(*) FROM inbox_pending").fetchone()[0]
        ids = conn.execute("SELECT event_id FROM inbox_seen").fetchall()
    conn.close()
    assert bodies == 0
    assert ids == [("evt_1",)]


async def test_state_round_trip_across_reopen_in_the_same_file_as_the_inbox(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    with anyio.fail_after(10):
        inbox = open_inbox(url)
        store = open_state_store(url)
        state = await load_state(store, "conv-1")
        state["name"] = "Dana"
        state["history"] = [{"q": "time?", "a": 3}]
        await state.save()
        await inbox.accept("evt_1", b"body")
        await store.close()
        await inbox.close()

        store = open_state_store(url)
        assert isinstance(store, SqliteStateStore)
        again = await load_state(store, "conv-1")
        assert dict(again) == {"name": "Dana", "history": [{"q": "time?", "a": 3}]}
        again.clear()
        await again.save()
        assert await store.load("conv-1") is None
        assert await store.count() == 0
        await store.close()
        inbox = open_inbox(url)
        assert [p.event_id for p in await inbox.pending()] == ["evt_1"]
        await inbox.close()


async def test_state_store_refuses_non_json(tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "bot.db"))
    with anyio.fail_after(10):
        with pytest.raises(TypeError, match="not JSON-serializable"):
            await store.save("c", {"x": object()})
        assert await store.load("c") is None
        await store.close()


async def test_synchronous_full_runs_in_worker_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db?synchronous=full"
    with anyio.fail_after(20):
        inbox = open_inbox(url)
        store = open_state_store(url)

        async def accept_many(start: int) -> None:
            for i in range(start, start + 20):
                assert await inbox.accept(f"evt_{i}", b"x")

        async with anyio.create_task_group() as tg:
            for start in range(0, 100, 20):
                tg.start_soon(accept_many, start)
        state = await load_state(store, "c")
        state["k"] = "v"
        await state.save()
        assert len(await inbox.pending()) == 100
        assert await store.load("c") == {"k": "v"}
        await inbox.close()
        await store.close()
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_state_loads_without_awaiting_and_sees_every_committed_save(
    tmp_path: Path, synchronous: str
) -> None:
    store = SqliteStateStore(str(tmp_path / "bot.db"), synchronous=synchronous)  # type: ignore[arg-type]
    with anyio.fail_after(20):
        assert store.load_nowait("c") is None
        for n in range(1, 30):
            await store.save("c", {"n": n})  # FULL: committed in a worker thread
            assert store.load_nowait("c") == {"n": n}
        await store.delete("c")
        assert store.load_nowait("c") is None and await store.load("c") is None
        await store.close()
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            store.load_nowait("c")


async def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = SqliteInboxStore(str(tmp_path / "bot.db"))
    with anyio.fail_after(10):
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            await store.add("evt_1", b"")


def test_schema_version_and_newer_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert sqlite_engine.migrate(conn) == 2
        assert sqlite_engine.migrate(conn) == 2  # idempotent
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        conn.execute("PRAGMA user_version = 99")
        with pytest.raises(sqlite3.DatabaseError, match="newer than this imbot"):
            sqlite_engine.migrate(conn)
    finally:
        conn.close()


async def test_checkpoints_keep_the_wal_bounded(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = SqliteInboxStore(str(path))
    with anyio.fail_after(60):
        for i in range(4000):
            await store.add(f"evt_{i}", b"x" * 1500)
            await store.complete(f"evt_{i}")
        wal = Path(f"{path}-wal").stat().st_size
        await store.close()
    # Without checkpoints the WAL would hold every page written (well over 12 MB here).
    assert wal < 8_000_000


async def test_accept_latency_on_the_event_loop(tmp_path: Path) -> None:
    # Not a benchmark, a guard: a normal accept is a single committed INSERT, far under 1 ms
    # at the median; the report prints the figures.
    store = SqliteInboxStore(str(tmp_path / "bot.db"))
    timings: list[float] = []
    with anyio.fail_after(60):
        for i in range(2000):
            started = time.perf_counter()
            await store.add(f"evt_{i}", b"x" * 1500)
            timings.append(time.perf_counter() - started)
            await store.complete(f"evt_{i}")
        await store.close()
    timings.sort()
    median, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
    print(f"sqlite accept: p50 {median * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us")
    assert median < 0.001


async def test_concurrent_writes_share_one_commit_and_keep_their_own_results(
    tmp_path: Path,
) -> None:
    store = SqliteInboxStore(str(tmp_path / "bot.db"))
    results: dict[int, bool] = {}

    async def accept(i: int) -> None:
        results[i] = await store.add("evt_same" if i % 2 else f"evt_{i}", b"x")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(accept, i)
        # Ten distinct ids, and exactly one winner among the ten adds of "evt_same".
        assert sum(results[i] for i in range(0, 20, 2)) == 10
        assert sum(results[i] for i in range(1, 20, 2)) == 1
        assert len(await store.pending()) == 11
        await store.close()


async def test_one_failing_write_does_not_fail_its_group(tmp_path: Path) -> None:
    store = SqliteInboxStore(str(tmp_path / "bot.db"))
    outcomes: dict[str, object] = {}

    async def accept(event_id: str, raw: bytes | None) -> None:
        try:
            outcomes[event_id] = await store.add(event_id, raw)  # type: ignore[arg-type]
        except sqlite3.IntegrityError as exc:
            outcomes[event_id] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept, "evt_a", b"a")
            tg.start_soon(accept, "evt_bad", None)  # NOT NULL body: this write fails
            tg.start_soon(accept, "evt_b", b"b")
        assert outcomes["evt_a"] is True
        assert outcomes["evt_b"] is True
        assert isinstance(outcomes["evt_bad"], sqlite3.IntegrityError)
        assert [p.event_id for p in await store.pending()] == ["evt_a", "evt_b"]
        await store.close()


async def test_a_cancelled_caller_still_sees_its_write_through(tmp_path: Path) -> None:
    # Once queued, a write commits; the caller is shielded so it can report the result
    # (an accepted event must never be committed and then silently dropped).
    store = SqliteInboxStore(str(tmp_path / "bot.db"))
    returned: list[bool] = []

    async def accept() -> None:
        returned.append(await store.add("evt_1", b"x"))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            await anyio.sleep(0)  # accept is now waiting for its group's commit
            tg.cancel_scope.cancel()
        assert returned == [True]
        assert [p.event_id for p in await store.pending()] == ["evt_1"]
        await store.close()
