"""What ``imbot dev`` checks and watches before the bot runs: its source, its APP, its ports.

``SourceWatcher`` notices saves (the reloads of ``imbot.cli.dev`` use it too);
``load_app_waiting`` imports the APP and, while it does not import, waits for the next save,
as a bot that fails on start-up does; ``probe_ports`` finds a taken port before anything starts
and names every one that is, with free ports to use instead.
"""

from __future__ import annotations

import errno
import importlib.util
import sys
import time
from pathlib import Path

from imbot.cli._common import fail
from imbot.cli.apploader import LoadedApp, load_app, parse_app
from imbot.errors import AppError, DevError
from imbot.net import probe_port, suggest_free_ports

__all__ = [
    "LOOPBACK",
    "POLL_INTERVAL",
    "SourceWatcher",
    "load_app_waiting",
    "probe_ports",
    "shown",
    "source_of",
]

POLL_INTERVAL = 0.5
"""Seconds between two looks at the source files' modification times."""

LOOPBACK = "127.0.0.1"
"""The simulator and the bot talk over the loopback only."""


class SourceWatcher:
    """Notices edits to the app file and to the ``.py`` files next to it.

    Example:
        >>> watcher = SourceWatcher(Path("examples/echo.py"))
        >>> watcher.changed()      # [] until a file is saved, added or removed
        []
    """

    def __init__(self, source: Path) -> None:
        """Remember the current state of ``source`` and its folder's ``.py`` files."""
        self.source = source
        self.folder = source.parent
        self._seen = self._scan()

    def _scan(self) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        try:
            files = [p for p in self.folder.glob("*.py") if not p.name.startswith(".")]
        except OSError:
            files = []
        for path in {*files, self.source}:
            try:
                stat = path.stat()
            except OSError:
                continue
            found[path] = (stat.st_mtime_ns, stat.st_size)
        return found

    def changed(self) -> list[Path]:
        """The files saved, added or removed since the last call, sorted."""
        now = self._scan()
        before, self._seen = self._seen, now
        return sorted(p for p in now.keys() | before.keys() if now.get(p) != before.get(p))


def source_of(text: str) -> Path | None:
    """The file an APP names, found without importing it; ``None`` when there is none.

    Args:
        text: the APP argument (``path/to/bot.py[:attr]`` or ``package.module[:attr]``).
    """
    try:
        spec = parse_app(text)
    except AppError:
        return None
    if spec.path is not None:
        path = spec.path.expanduser()
        return path.resolve() if path.is_file() else None
    assert spec.module is not None
    try:
        # Imports the parent packages, not the module itself.
        found = importlib.util.find_spec(spec.module)
    except Exception:
        return None
    origin = found.origin if found is not None else None
    return Path(origin).resolve() if origin and origin.endswith(".py") else None


def load_app_waiting(text: str, *, reload: bool) -> LoadedApp:
    """Import the APP; when it does not import, say why and try again at the next save.

    A bot that fails on start-up waits for a save too (see ``imbot.cli.dev``), so both
    mistakes are fixed the same way. Without reloading, or when there is no file to watch
    (a typo in the path), the error ends the command.

    Args:
        text: the APP argument.
        reload: whether ``imbot dev`` reloads on save (else there is nothing to wait for).

    Raises:
        AppError: the APP cannot be imported and there is nothing to wait for.
    """
    while True:
        try:
            return load_app(text)
        except AppError as exc:
            source = source_of(text) if reload else None
            if source is None:
                raise
            fail("dev", str(exc))
        watcher = SourceWatcher(source)
        print(
            f"imbot dev: waiting for a change to {shown(source)}; the next save tries again",
            flush=True,
        )
        while not watcher.changed():
            time.sleep(POLL_INTERVAL)
        _forget_modules(source.parent)


def _forget_modules(folder: Path) -> None:
    """Drop the modules imported from ``folder``, so the next import reads the saved files.

    The APP's failed import is gone already, but a module next to it that imported fine
    stays in ``sys.modules`` with its old code, and the fix may be in that one.
    """
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().parent == folder:
            del sys.modules[name]


def shown(path: Path) -> Path:
    """``path`` relative to the current folder when it is under it (for messages)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def probe_ports(port: int, bot_port: int) -> int:
    """Check both ports before anything starts; return the bot's (0 becomes a free one).

    Args:
        port: the simulator's port (``--port``); 0 is left to the simulator.
        bot_port: the bot's webhook port (``--bot-port``); 0 picks a free one now.

    Raises:
        DevError: a port is taken (both are named when both are), or they are the same.
    """
    if port and port == bot_port:
        raise DevError(f"--port and --bot-port are both {port}; give them different ports")
    taken: list[tuple[str, int]] = []
    bound = bot_port
    for flag, wanted in (("--port", port), ("--bot-port", bot_port)):
        if not wanted and flag == "--port":
            continue  # the simulator picks its free port when it binds
        try:
            found = probe_port(LOOPBACK, wanted, how=flag)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise DevError(exc.strerror or str(exc)) from None
            taken.append((flag, wanted))
            continue
        if flag == "--bot-port":
            bound = found
    if not taken:
        return bound
    free = suggest_free_ports(LOOPBACK, len(taken))
    if len(free) == len(taken):
        pick = " ".join(f"{flag} {number}" for (flag, _), number in zip(taken, free, strict=True))
        suggestion = f"e.g. {pick} (free now; 0 picks a free one)"
    else:
        suggestion = "0 picks a free one"
    if len(taken) == 1:
        ((flag, number),) = taken
        raise DevError(
            f"port {number} on {LOOPBACK} is already in use; stop the other process or "
            f"pick another port with {flag}: {suggestion}"
        )
    raise DevError(
        f"ports {taken[0][1]} and {taken[1][1]} on {LOOPBACK} are both in use (another "
        f"imbot dev?); stop the other process or pick other ports: {suggestion}"
    )
