"""``imbot run --workers N``: N processes sharing one port, supervised (real processes, 127.0.0.1).

The supervisor's policy (start, restart with backoff, give up, forward signals) is checked
with stand-in workers, tiny scripts that speak its protocol (``--ready-fd``), so that each
case takes a fraction of a second; the real thing, ``imbot run`` workers on Redis sharing
one port, is checked end to end below them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imbot.cli.workers import describe_exit
from tests.support import REPO_ROOT, free_port
from tests.support.botprocess import SECRET, post_webhook
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")

_APP = """\
from imbot import Bot

bot = Bot()


@bot.on_message()
async def ignore(ctx):
    pass
"""

_FAILING_APP = """\
from contextlib import asynccontextmanager

from imbot import Bot


@asynccontextmanager
async def lifespan(bot):
    raise RuntimeError("the database is not there")
    yield


bot = Bot(lifespan=lifespan)
"""

# A stand-in worker: says it listens (or not), then lives or dies as the test's plan says.
# Its plan is a line per start in a file; each start consumes one line.
_FAKE_WORKER = """\
import os, signal, sys, time
args = sys.argv[1:]
fd = int(args[args.index("--ready-fd") + 1])
plan_file = os.environ["FAKE_PLAN"]
with open(plan_file) as f:
    lines = f.read().splitlines()
step, rest = (lines[0], lines[1:]) if lines else ("serve", [])
with open(plan_file, "w") as f:
    f.write("\\n".join(rest))
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(f"{os.getpid()} {step}\\n")
if step.startswith("fail"):
    sys.exit(int(step.split()[1]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
os.write(fd, b"R")
os.close(fd)
if step.startswith("crash"):
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)
while True:
    time.sleep(0.1)
"""

_SUPERVISE = """\
import sys
from imbot.cli.workers import Supervisor, WorkerSpec
spec = WorkerSpec(app="app.py", count=int(sys.argv[2]), host="127.0.0.1", port=1, path="/w",
                  command=(sys.executable, sys.argv[1]))
sys.exit(Supervisor(spec, restart_delays=(0.05, 0.1), stable_after=60,
                    max_failed_starts=3).run())
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INKBOX_", "IMBOT_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), IMBOT_LOG_FORMAT="json", **extra)
    return env


class FakeGroup:
    """The supervisor over stand-in workers, in its own process."""

    def __init__(self, tmp_path: Path, plan: list[str], count: int) -> None:
        self.plan = tmp_path / "plan.txt"
        self.plan.write_text("\n".join(plan))
        self.starts = tmp_path / "starts.txt"
        worker = tmp_path / "fake_worker.py"
        worker.write_text(_FAKE_WORKER)
        self.log = tmp_path / "supervisor.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SUPERVISE, str(worker), str(count)],
                env=_env(FAKE_PLAN=str(self.plan), FAKE_LOG=str(self.starts)),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def started(self) -> list[str]:
        return self.starts.read_text().splitlines() if self.starts.exists() else []

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def wait_for(self, event: str, count: int = 1, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for line in self.lines() if line.get("event") == event) < count:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.02)

    def finish(self, timeout: float = 15) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(self.log.read_text()) from None


def test_a_worker_that_dies_is_started_again_and_sigterm_stops_the_group(tmp_path: Path) -> None:
    group = FakeGroup(tmp_path, ["serve", "crash", "serve"], count=2)
    group.wait_for("all workers listening")
    group.wait_for("worker listening", count=3)  # the crashed one came back
    restarts = [
        line for line in group.lines() if line.get("event") == "a worker exited; starting it again"
    ]
    assert [r["exit"] for r in restarts] == ["killed by SIGKILL"]
    pids = [int(line.split()[0]) for line in group.started()]
    group.process.send_signal(signal.SIGTERM)
    assert group.finish() == 0
    for pid in pids:  # every worker has exited, none is left behind
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_a_worker_that_cannot_start_stops_the_group_with_its_exit_code(tmp_path: Path) -> None:
    group = FakeGroup(tmp_path, ["serve", "fail 3"], count=2)
    assert group.finish() == 3
    error = next(line for line in group.lines() if line.get("level") == "error")
    assert error["event"] == "a worker exited before listening; stopping the others"
    assert error["exit"] == "exit code 3"


def test_restarts_that_keep_failing_stop_the_group(tmp_path: Path) -> None:
    # Both serve, then worker 0 or 1 crashes and every restart after fails before listening.
    group = FakeGroup(tmp_path, ["serve", "crash", "fail 1", "fail 1", "fail 1"], count=2)
    assert group.finish() == 1
    events = [line.get("event") for line in group.lines()]
    assert "a worker failed to start again several times in a row; stopping" in events
    assert len(group.started()) == 5


def test_describe_exit_names_signals() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(2) == "exit code 2"


# ---------------------------------------------------------------- `imbot run --workers`


def _imbot_run(tmp_path: Path, app: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    path = tmp_path / "app.py"
    path.write_text(app)
    log = tmp_path / "run.log"
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "imbot", "run", str(path), "--no-api-check", *args],
            env=_env(
                INKBOX_API_KEY="ApiKey_test",
                # Nothing answers there; the bot never calls the API in these tests anyway.
                INKBOX_BASE_URL=f"http://127.0.0.1:{free_port()}",
                IMBOT_SIGNING_KEY=SECRET,
                **env,
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _log(tmp_path: Path, *, strict: bool = True) -> list[dict[str, object]]:
    text = (tmp_path / "run.log").read_text()
    # Every line is one JSON object: several processes share the output, whole lines each.
    # (Not strict: a traceback printed by Python itself, line by line.)
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines if strict or line.startswith("{")]


def _wait_for(tmp_path: Path, process: subprocess.Popen[bytes], event: str, count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while sum(1 for line in _log(tmp_path) if line.get("event") == event) < count:
        assert process.poll() is None, (tmp_path / "run.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@contextmanager
def _stopped_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_several_workers_without_a_shared_store_are_refused(tmp_path: Path) -> None:
    process = _imbot_run(tmp_path, _APP, "--port", str(free_port()), "--workers", "3")
    assert process.wait(timeout=30) == 2
    output = (tmp_path / "run.log").read_text()
    assert "imbot run: error: --workers 3 needs a store the workers share" in output
    assert "dedupe window" in output and "--store redis://" in output


def test_workers_must_be_at_least_one(tmp_path: Path) -> None:
    process = _imbot_run(tmp_path, _APP, "--workers", "0")
    assert process.wait(timeout=30) == 2
    assert "--workers must be at least 1" in (tmp_path / "run.log").read_text()


def test_one_worker_is_one_process_as_before(tmp_path: Path) -> None:
    port = free_port()
    with _stopped_at_exit(_imbot_run(tmp_path, _APP, "--port", str(port), "--workers", "1")) as p:
        _wait_for(tmp_path, p, "serving webhooks")
        assert _children(p.pid) == []
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert json.load(answer)["running"] is True
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0


@pytest.mark.slow
def test_workers_share_the_port_restart_and_stop_together(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    process = _imbot_run(
        tmp_path, _APP, "--port", str(port), "--workers", "3", "--store", redis_server.url
    )
    with _stopped_at_exit(process):
        _wait_for(tmp_path, process, "all workers listening")
        workers = _children(process.pid)
        assert len(workers) == 3
        # Thirty connections held open: the kernel spreads them over the three sockets, and
        # each worker holds the ones it accepted.
        before = {pid: _sockets(pid) for pid in workers}
        held = [_answered_connection(port) for _ in range(30)]
        spread = {pid: _sockets(pid) - before[pid] for pid in workers}
        for sock in held:
            sock.close()
        # (A worker may also have opened a connection to Redis meanwhile.)
        assert sum(spread.values()) >= 30, spread
        assert sum(1 for count in spread.values() if count >= 3) >= 2, spread

        os.kill(workers[0], signal.SIGKILL)
        _wait_for(tmp_path, process, "worker listening", count=4)
        after = _children(process.pid)
        assert len(after) == 3 and workers[0] not in after
        assert post_webhook(port, _event()) == 200  # still served

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    for pid in after:
        assert not Path(f"/proc/{pid}").exists()


def _sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds."""
    found = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return found


def _answered_connection(port: int) -> socket.socket:
    """A keep-alive connection that has had one ``/healthz`` answered (so it was accepted)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return sock


def _event() -> bytes:
    from tests.support.botprocess import event_body

    return event_body("evt_workers")


@pytest.mark.slow
def test_a_worker_that_cannot_start_fails_the_command(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    process = _imbot_run(
        tmp_path, _FAILING_APP, "--port", str(free_port()), "--workers", "2",
        "--store", redis_server.url,
    )  # fmt: skip
    with _stopped_at_exit(process):
        assert process.wait(timeout=40) != 0
    events = [line.get("event") for line in _log(tmp_path, strict=False)]
    assert "a worker exited before listening; stopping the others" in events
    assert "RuntimeError: the database is not there" in (tmp_path / "run.log").read_text()


@pytest.mark.slow
def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    process = _imbot_run(
        tmp_path, _APP, "--port", str(free_port()), "--workers", "2", "--store", redis_server.url
    )
    with _stopped_at_exit(process):
        _wait_for(tmp_path, process, "all workers listening")
        workers = _children(process.pid)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.1)
