"""Slow and idle clients cannot take the webhook server down (issue 10, item 4).

The server had no read timeout: a half-sent request stayed open for ever. With the usual
limit of 1,024 open files, one client holding ~1,070 idle connections made the bot
unreachable (valid webhooks timed out, ``/healthz`` failed), and asyncio's accept loop wrote
17,000 "Too many open files" lines in seconds. Now connections are capped below the limit
(the longest-idle one makes room for a new one), a connection that sends no request headers
within ``header_timeout`` is closed, running out of descriptors is logged once per interval,
and ``imbot run`` raises its soft open-files limit to the hard limit.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import anyio
import pytest

from imbot.bot.limits import DEFAULT_HEADER_TIMEOUT
from imbot.bot.server import create_app, serve_app
from tests.support import REPO_ROOT
from tests.support.botprocess import SECRET, event_body, imbot_run, limited, post_webhook

IDLE_CONNECTIONS = 1_100
PARTIAL_REQUEST = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Inkbox-Timest"


@contextmanager
def open_files_in_this_process(needed: int) -> Iterator[None]:
    """Raise this process's soft open-files limit to ``needed`` for the block (or skip)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files in the test process, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections; every other one sends the start of a request and stalls."""
    held: list[socket.socket] = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if index % 2:
            sock.sendall(PARTIAL_REQUEST)
        held.append(sock)
    return held


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has closed (end of stream or reset)."""
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def test_past_1100_idle_connections_at_1024_open_files_a_webhook_is_answered(
    tmp_path: Path,
) -> None:
    with (
        open_files_in_this_process(IDLE_CONNECTIONS + 400),
        imbot_run(tmp_path, open_files=(1024, 1024)) as bot,
    ):
        assert bot.open_files_limit() == (1024, 1024)
        held = open_idle_connections(bot.port, IDLE_CONNECTIONS)
        try:
            started = time.monotonic()
            status = post_webhook(bot.port, event_body(), timeout=DEFAULT_HEADER_TIMEOUT + 2)
            answered_after = time.monotonic() - started
            with urllib.request.urlopen(f"http://127.0.0.1:{bot.port}/healthz", timeout=5) as r:
                health = json.loads(r.read())
            closed = closed_by_server(held)
        finally:
            for sock in held:
                sock.close()
        log = bot.log()
    print(f"\n200 after {answered_after:.3f} s; server closed {closed} of {len(held)} idle")
    assert status == 200
    assert answered_after < DEFAULT_HEADER_TIMEOUT + 2
    assert health["running"] is True
    # Capped below the limit: the process never ran out, and said so once, not per connection.
    assert "Too many open files" not in log
    assert log.count("server.connection_limit") <= 2
    assert "Traceback" not in log


def test_imbot_run_raises_the_open_files_limit_to_the_hard_limit(tmp_path: Path) -> None:
    with imbot_run(tmp_path, open_files=(1024, 4096)) as bot:
        limit = bot.open_files_limit()
        deadline = time.monotonic() + 5
        while "open files limit" not in bot.log() and time.monotonic() < deadline:
            time.sleep(0.05)  # logged once the bot listens, a moment after the port opens
        log = bot.log()
    assert limit == (4096, 4096)
    said = [json.loads(line) for line in log.splitlines() if "open files limit" in line]
    assert [(entry["limit"], entry["previous"]) for entry in said] == [(4096, 1024)]


# Serves with every descriptor but FREE_FILES taken by other files, as a bot whose own files
# and outbound calls used them up would be.
_OUT_OF_FILES = """
import os, sys
from functools import partial

import anyio

from imbot.bot.server import create_app, serve_app
from imbot.log import configure_logging


async def main() -> None:
    async def receive(event, raw):
        pass

    app = create_app(receive=receive, secrets=[sys.argv[1]])
    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_app, app, port=0))
        taken = []
        try:
            while True:
                taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        for fd in taken[:FREE_FILES]:
            os.close(fd)
        print(port, flush=True)
        await anyio.sleep_forever()


configure_logging("INFO")
anyio.run(main)
"""


def test_running_out_of_descriptors_is_one_line_and_a_webhook_still_gets_through(
    tmp_path: Path,
) -> None:
    script = tmp_path / "out_of_files.py"
    script.write_text(_OUT_OF_FILES.replace("FREE_FILES", "10"))
    log_path = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "IMBOT_LOG_FORMAT": "json"}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            limited([sys.executable, str(script), SECRET], (256, 256)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
        )
        try:
            assert process.stdout is not None
            with process.stdout:
                port = int(process.stdout.readline())
            held = open_idle_connections(port, 60)
            try:
                time.sleep(0.5)  # the server runs out of descriptors for these
                started = time.monotonic()
                status = post_webhook(port, event_body(), timeout=DEFAULT_HEADER_TIMEOUT + 2)
                answered_after = time.monotonic() - started
            finally:
                for sock in held:
                    sock.close()
        finally:
            process.kill()
            process.wait()
    log = log_path.read_text(errors="replace")
    print(f"\n200 after {answered_after:.3f} s; log: {len(log.splitlines())} lines")
    assert status == 200
    assert answered_after < 2
    failures = [line for line in log.splitlines() if "Too many open files" in line]
    assert len(failures) == 1, log[-3000:]
    assert json.loads(failures[0])["event"] == "server.accept_failed"
    assert "Traceback" not in log


async def test_half_sent_requests_and_silent_connections_are_cut_off() -> None:
    async def receive(event: object, raw: bytes) -> None:
        pass

    app = create_app(receive=receive, secrets=[SECRET])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(serve_app, app, port=0, header_timeout=0.5))
            silent = await anyio.connect_tcp("127.0.0.1", port)
            half_sent = await anyio.connect_tcp("127.0.0.1", port)
            await half_sent.send(PARTIAL_REQUEST)
            started = anyio.current_time()
            for stream in (silent, half_sent):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
                await stream.aclose()
            elapsed = anyio.current_time() - started
            tg.cancel_scope.cancel()
    assert 0.4 < elapsed < 2
