"""``imbot dev`` as a subprocess, and the synchronous ``/sim/v1`` calls its tests make.

Everything here waits with deadlines (polling, never fixed sleeps) and cleans up: a
``DevServer`` always ends its process group, even when a test fails half-way.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from support import REPO_ROOT

__all__ = [
    "IMBOT",
    "DevServer",
    "clean_env",
    "dev_server",
    "echo_bot_source",
    "http",
    "poll",
    "port_closed",
    "text",
    "timeline",
    "url_error",
    "wait_reply",
]

IMBOT = [sys.executable, "-m", "imbot"]

T = TypeVar("T")

ECHO_BOT = '''\
"""A test bot: read receipt, a tapback, typing, then the reply."""

from imbot import Bot, Context, MessageReceived

bot = Bot()


@bot.on_message()
async def echo(ctx: Context[MessageReceived]) -> None:
    await ctx.mark_read()
    await ctx.react("love")
    async with ctx.typing():
        await ctx.reply(f"{PREFIX}: {ctx.text}")
'''


def echo_bot_source(prefix: str) -> str:
    """The test bot's source, replying ``"<prefix>: <text>"``."""
    return ECHO_BOT.replace("{PREFIX}", prefix)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``imbot``: no Inkbox settings of the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INKBOX_", "IMBOT_")) and k != "PYTEST_CURRENT_TEST"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something other than ``None``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """One JSON request; returns the decoded answer (raises on an error status)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def text(base: str, phone: str, message: str) -> dict[str, Any]:
    """The human texts ``message``; returns the new timeline item."""
    result: dict[str, Any] = http(
        "POST", f"{base}/sim/v1/phones/{phone}/messages", {"text": message}
    )["item"]
    return result


def timeline(base: str, phone: str) -> dict[str, Any]:
    """The phone's threads and items."""
    result: dict[str, Any] = http("GET", f"{base}/sim/v1/phones/{phone}/timeline")
    return result


def wait_reply(base: str, phone: str, expected: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the agent's message ``expected`` is on the phone's timeline."""

    def found() -> dict[str, Any] | None:
        for item in timeline(base, phone)["items"]:
            if item["from"] == "them" and item["text"] == expected:
                return item
        return None

    return poll(found, timeout, f"the reply {expected!r}")


class DevServer:
    """A running ``imbot dev``: its output lines, the simulator's URL, a clean stop."""

    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [*IMBOT, "dev", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base_url = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait for an output line matching ``pattern`` (a regex); return the match."""
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in:\n" + self.output())
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"imbot dev exited ({self.process.wait()}) before {pattern!r}:\n"
                    + self.output()
                )
            self.lines.append(line)
            if match := regex.search(line):
                return match

    def ready(self, timeout: float = 30.0) -> str:
        """Wait for the banner; return the simulator's base URL."""
        match = self.wait_line(r"Chat page:\s+(http://127\.0\.0\.1:\d+)/", timeout)
        self.wait_line(r"Press Ctrl-C to stop", timeout)
        self.base_url = match.group(1)
        return self.base_url

    def output(self) -> str:
        """Everything printed so far (what has been read)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return "\n".join(self.lines)

    def stop(self, timeout: float = 15.0) -> int:
        """Ctrl-C (SIGINT), as a developer would; kill the whole group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._reader.join(timeout=5)
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()
        return self.process.returncode


@contextmanager
def dev_server(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None
) -> Iterator[DevServer]:
    """Run ``imbot dev ARGS`` for the block; stopped (and killed if need be) at the end."""
    server = DevServer(args, cwd, env or clean_env())
    try:
        yield server
    finally:
        server.stop()


def port_closed(port: int) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def url_error(url: str) -> int | None:
    """The HTTP status of GET ``url`` (None when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None
