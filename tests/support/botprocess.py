"""``imbot run`` as a child process, under an open-files limit if asked, and what tests read of it.

The webhook server's hardening tests run the bot the way production does, then look at it
from outside: its resident memory (``/proc/PID/status``), its open-files limit
(``/proc/PID/limits``) and its log (stdout and stderr, written to one file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imbot.webhooks import sign
from support import wait_listening
from tests.support import REPO_ROOT, free_port

__all__ = ["SECRET", "BotProcess", "event_body", "imbot_run", "limited", "post_webhook"]

SECRET = "whsec_hardening_test"
"""The signing key the child process verifies with."""

_BOT = """\
from imbot import Bot

bot = Bot()


@bot.on_message()
async def ignore(ctx):
    pass
"""


# Sets the limit, then becomes the command (same process id): a limit set this way stays the
# child's own, and nothing runs between fork and exec in the test process.
_LAUNCH = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def limited(command: list[str], open_files: tuple[int, int] | None) -> list[str]:
    """``command`` (starting with the executable's path), run under ``open_files`` (soft, hard)."""
    if open_files is None:
        return command
    soft, hard = open_files
    return [sys.executable, "-c", _LAUNCH, str(soft), str(hard), *command]


def event_body(event_id: str = "evt_hardening") -> bytes:
    """A valid ``imessage.received`` envelope."""
    return json.dumps(
        {
            "id": event_id,
            "event_type": "imessage.received",
            "timestamp": "2026-06-09T14:30:59Z",
            "data": {
                "message": {
                    "id": "5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11",
                    "conversation_id": "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602",
                    "direction": "inbound",
                    "remote_number": "+15555550142",
                    "content": "hello",
                    "created_at": "2026-06-09T14:30:58Z",
                    "updated_at": "2026-06-09T14:30:58Z",
                },
                "reaction": None,
                "contacts": [],
                "agent_identities": [],
            },
        }
    ).encode()


def post_webhook(port: int, body: bytes, *, secret: str = SECRET, timeout: float = 5) -> int:
    """POST ``body`` signed with ``secret`` to ``/webhook``; the status (an error status too)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **sign(body, secret)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class BotProcess:
    """A running ``imbot run``."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log(self) -> str:
        """Everything it has written so far."""
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        """Its resident memory, in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def open_files_limit(self) -> tuple[int, int]:
        """Its open-files limit: (soft, hard)."""
        limits = Path(f"/proc/{self.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        soft, hard = line.split()[3:5]
        return int(soft), int(hard)


_IMBOT_RUN = [sys.executable, "-m", "imbot", "run"]


@contextmanager
def imbot_run(tmp_path: Path, *, open_files: tuple[int, int] | None = None) -> Iterator[BotProcess]:
    """Run a bot whose handler does nothing, until it listens; stop it on exit.

    Args:
        tmp_path: where the bot's file and its log go.
        open_files: the child's (soft, hard) open-files limit, set before it starts; the
            limit it raises is its own.
    """
    app = tmp_path / "bot.py"
    app.write_text(_BOT)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INKBOX_", "IMBOT_"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        INKBOX_API_KEY="ApiKey_test",
        INKBOX_BASE_URL=f"http://127.0.0.1:{free_port()}",
        IMBOT_SIGNING_KEY=SECRET,
        IMBOT_LOG_FORMAT="json",
    )

    log_path = tmp_path / "imbot-run.log"
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            # No API answers at INKBOX_BASE_URL: skip the start-up check of the key.
            limited([*_IMBOT_RUN, str(app), "--port", str(port), "--no-api-check"], open_files),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(port, process, log_path)
            yield BotProcess(process, port, log_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
