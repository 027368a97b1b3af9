"""imbot's own test support: what only imbot's tests need, beside the public ``imbot.testing``.

Everything a bot's author could reuse lives in ``imbot.testing`` (the harness, the simulator
with an agent identity, event factories, ``eventually``, ``tiny_png``) and the tests use it
from there. What is left here serves imbot's own tests alone:

* this module: the repository's paths, the example bots loaded by path, a free port for a
  bot run as a child process;
* ``simapi``: the simulator conformance tests' raw HTTP client, webhook receiver and
  simulator-in-a-thread (``tests/sim``);
* ``devserver``: ``imbot dev`` run as a subprocess, and the synchronous phone calls its tests
  make (``tests/scenarios/test_dev*.py``, the demo browser test);
* ``browser``: the chat-page browser test's Chromium lookup and its plain-aiohttp echo bot;
* ``botprocess``: ``imbot run`` as a child process under an open-files limit, its memory
  and its log (the webhook server's hardening tests, ``tests/regressions``);
* ``workers``: several ``imbot run`` processes on one Redis, an Inkbox that delivers each
  event twice at random moments, and an API stand-in that honours idempotency keys
  (``tests/scaleout``).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["EXAMPLES", "REPO_ROOT", "free_port", "load_example", "snapshot"]

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository's root folder."""

EXAMPLES = REPO_ROOT / "examples"
"""The example bots (a folder of scripts, not a package)."""


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` once, as module ``imbot_example_<name>``."""
    module_name = f"imbot_example_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago, for a server started as a child process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def snapshot(items: list[T]) -> list[T]:
    """A copy of a list, as an awaitable probe for ``imbot.testing.eventually``."""
    return list(items)


def wait_listening(port: int, process: subprocess.Popen[Any], log: Path | None = None) -> None:
    """Wait (20 s at most) until a child process listens on ``port``; fail if it exits first.

    The failure shows the child's log file, or its output when it wrote to pipes.
    """
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError(
                    log.read_text() if log is not None else str(process.communicate())
                ) from None
            assert time.monotonic() < deadline, "imbot run never listened"
            time.sleep(0.02)
