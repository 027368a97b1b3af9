"""``imbot dev``: the simulator and the bot together, with the bot reloaded on every save.

The simulator runs in this process, so its data survives reloads. The bot runs as a child
process (``imbot run APP``) that is restarted when its source changes. At start the bot's
identity is created in the simulator (or found again in a reused database), its webhook is
subscribed to the five iMessage events, and the child gets an identity-scoped API key and
a fresh signing key through the environment.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from imbot.errors import SetupError

if TYPE_CHECKING:
    from imbot.cli.apploader import LoadedApp
    from imbot.sim import Simulator

__all__ = ["DevOptions", "SourceWatcher", "run_dev"]

POLL_INTERVAL = 0.5
"""Seconds between two looks at the source files' modification times."""

STOP_TIMEOUT = 5.0
"""Seconds the bot gets to finish its handlers when it is reloaded or stopped."""

# A reload leaves the bot down for a moment; deliveries that fail then are retried soon.
_DEV_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class DevError(SetupError):
    """``imbot dev`` cannot start; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class DevOptions:
    """What ``imbot dev`` was asked to do.

    Attributes:
        port: the simulator's port (0 = a free one).
        bot_port: the bot's webhook port (0 = a free one).
        db: the simulator's SQLite file, or ``:memory:``.
        admin_key: the simulator's admin key; ``None`` reuses the stored one.
        reload: restart the bot when its source changes.
    """

    port: int = 8787
    bot_port: int = 8788
    db: str = os.path.join(".imbot", "sim.sqlite3")
    admin_key: str | None = None
    reload: bool = True


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


def _probe_port(port: int, flag: str) -> int:
    """Check that a port is free (or pick one for 0) before the child tries to bind it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Same option aiohttp sets, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return int(sock.getsockname()[1])
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DevError(
                f"port {port} on 127.0.0.1 is already in use; stop the other process or pick "
                f"another port with {flag} (0 picks a free one)"
            ) from None
        raise DevError(f"cannot listen on 127.0.0.1:{port} ({flag}): {exc.strerror}") from None
    finally:
        sock.close()


@dataclass(frozen=True, slots=True)
class _Credentials:
    api_key: str
    signing_key: str


async def _provision(sim: Simulator, handle: str, webhook: str) -> _Credentials:
    """Identity (iMessage on), subscription, identity-scoped key and a fresh signing key."""
    import aiohttp

    from imbot.cli.provision import ensure_identity, ensure_subscription
    from imbot.client.client import InkboxClient

    async with InkboxClient(api_key=sim.admin_key, base_url=sim.base_url) as client:
        identity, _ = await ensure_identity(client, handle, create=True)
        subscribed = await ensure_subscription(client, identity, webhook)
        signing_key = subscribed.signing_key
        if signing_key is None:
            # The key is shown once; a reused database keeps the identity and the
            # subscription, and the bot gets a new key for this session.
            signing_key = (await client.create_signing_key(handle)).signing_key
    url = f"{sim.base_url}/sim/v1/identities/{handle}/api-keys"
    headers = {"X-API-Key": sim.admin_key}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"label": "imbot dev"}, headers=headers) as response,
    ):
        body = await response.json()
        if response.status != 201:
            raise DevError(f"the simulator refused an API key for @{handle}: {body}")
    return _Credentials(api_key=str(body["api_key"]), signing_key=signing_key)


class _BotProcess:
    """The bot's child process: start, wait until it listens, stop."""

    def __init__(self, app: str, port: int, env: dict[str, str]) -> None:
        self.app = app
        self.port = port
        self.env = env
        self.process: anyio.abc.Process | None = None
        self.reported = False

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.returncode is not None

    async def start(self) -> bool:
        """Start the bot; return once it listens (True) or has exited (False)."""
        command = [
            sys.executable,
            "-m",
            "imbot",
            "run",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--parent-pid",
            str(os.getpid()),
        ]
        # Its own session: Ctrl-C reaches only `imbot dev`, which stops the bot in order.
        self.process = await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=None,
            stderr=None,
            env=self.env,
            start_new_session=True,
        )
        self.reported = False
        while self.process.returncode is None:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", self.port)
            except OSError:
                with anyio.move_on_after(0.05):
                    await self.process.wait()
                continue
            await stream.aclose()
            return True
        return False

    async def stop(self) -> None:
        """Ask the bot to stop (SIGTERM); kill it if it has not exited in time."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        with anyio.move_on_after(STOP_TIMEOUT):
            await process.wait()
            return
        process.kill()
        await process.wait()


def _say(text: str) -> None:
    print(f"imbot dev: {text}", flush=True)


def _announce(app: LoadedApp, sim: Simulator, handle: str, webhook: str, reload: bool) -> None:
    try:
        where = app.source.relative_to(Path.cwd())
    except ValueError:
        where = app.source
    lines = [
        f"imbot dev: @{handle} is running in the simulator",
        f"  Chat page:    {sim.chat_url}",
        f"  Text:         connect @{handle}   to {sim.triage_number}   (on the chat page, "
        "or with `imbot chat`)",
        f"  Simulator:    {sim.base_url}   (Inkbox API under /api/v1; admin key {sim.admin_key})",
        f"  Bot webhook:  {webhook}",
    ]
    if reload:
        lines.append(f"  Reloads when {where} or a .py file next to it changes.")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def _names(paths: list[Path]) -> str:
    shown = [p.name for p in paths[:3]]
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return ", ".join(shown) + more


async def _supervise(bot: _BotProcess, watcher: SourceWatcher | None, handle: str) -> None:
    """Restart the bot when its source changes; report when it stops on its own."""
    while True:
        await anyio.sleep(POLL_INTERVAL)
        changed = watcher.changed() if watcher is not None else []
        if changed:
            _say(f"{_names(changed)} changed; reloading @{handle}")
            started = time.monotonic()
            await bot.stop()
            if await bot.start():
                _say(f"reloaded @{handle} in {time.monotonic() - started:.1f} s")
            else:
                _report_exit(bot, watcher)
        elif bot.exited and not bot.reported:
            _report_exit(bot, watcher)


def _report_exit(bot: _BotProcess, watcher: SourceWatcher | None) -> None:
    bot.reported = True
    code = bot.process.returncode if bot.process is not None else None
    then = "it restarts when you save a change" if watcher else "restart imbot dev"
    _say(f"the bot stopped (exit code {code}); the simulator keeps running and {then}")


async def _serve(app: LoadedApp, options: DevOptions) -> None:
    from imbot.sim import Simulator

    bot_port = _probe_port(options.bot_port, "--bot-port")
    admin_key = options.admin_key or os.environ.get("IMBOT_SIM_ADMIN_KEY") or None
    try:
        sim = Simulator(
            db=options.db,
            port=options.port,
            admin_key=admin_key,
            delivery_delay=0.2,
            webhook_retry_delays=_DEV_RETRIES,
        )
    except ValueError as exc:
        raise DevError(str(exc)) from None
    handle = app.handle
    webhook = f"http://127.0.0.1:{bot_port}/webhook"
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with sim:
            credentials = await _provision(sim, handle, webhook)
            env = {
                **os.environ,
                "INKBOX_API_KEY": credentials.api_key,
                "INKBOX_BASE_URL": sim.base_url,
                "IMBOT_SIGNING_KEY": credentials.signing_key,
                "IMBOT_HANDLE": handle,
                "PYTHONUNBUFFERED": "1",
            }
            bot = _BotProcess(app.spec.text, bot_port, env)
            watcher = SourceWatcher(app.source) if options.reload else None
            try:
                async with anyio.create_task_group() as tg:
                    if not await bot.start():
                        _report_exit(bot, watcher)
                    _announce(app, sim, handle, webhook, options.reload)
                    tg.start_soon(_supervise, bot, watcher, handle)
                    async for _ in signals:
                        break
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await bot.stop()


def run_dev(app: LoadedApp, options: DevOptions) -> None:
    """Run ``imbot dev`` until SIGINT or SIGTERM.

    Args:
        app: the loaded APP (the parent imports it once, to check it and read its handle).
        options: the parsed command line.

    Raises:
        DevError: a port is taken or the simulator refused the set-up.
        OSError: the simulator's port cannot be bound.
    """
    try:
        anyio.run(_serve, app, options)
    except BaseExceptionGroup as group:
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        raise inner from None
    _say("stopped")
