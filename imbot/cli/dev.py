"""``imbot dev``: the simulator and the bot together, with the bot reloaded on every save.

The simulator runs in this process, so its data survives reloads. The bot runs as a child
process (``imbot run APP``) that is restarted when its source changes. At start the bot's
identity is created in the simulator (or found again in a reused database), its webhook is
subscribed to the five iMessage events, and the child gets an identity-scoped API key and
a fresh signing key through the environment.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from imbot.cli._common import DEFAULT_SIM_DB, Subparsers, add_store_argument, guard
from imbot.cli.apploader import LoadedApp, add_app_argument
from imbot.cli.devstart import (
    LOOPBACK,
    POLL_INTERVAL,
    SourceWatcher,
    load_app_waiting,
    probe_ports,
    shown,
)
from imbot.config import (
    API_KEY_ENV,
    BASE_URL_ENV,
    HANDLE_ENV,
    SIGNING_KEY_ENV,
    STORE_ENV,
    child_environment,
    resolve_sim_admin_key,
)
from imbot.errors import DevError, single_exception

if TYPE_CHECKING:
    import anyio.abc

    from imbot.sim import Simulator

__all__ = ["DevError", "DevOptions", "SourceWatcher", "add_parser", "run", "run_dev"]

STOP_TIMEOUT = 5.0
"""Seconds the bot gets to finish its handlers when it is reloaded or stopped."""

# A reload leaves the bot down for a moment; deliveries that fail then are retried soon.
_DEV_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

# The simulator and the bot talk over the loopback only.
_LOOPBACK = LOOPBACK


@dataclass(frozen=True, slots=True, kw_only=True)
class DevOptions:
    """What ``imbot dev`` was asked to do, every setting resolved.

    Attributes:
        port: the simulator's port (0 = a free one).
        bot_port: the bot's webhook port (0 = a free one).
        db: the simulator's SQLite file, or ``:memory:``.
        admin_key: the simulator's admin key (``--admin-key``, else ``IMBOT_SIM_ADMIN_KEY``);
            ``None`` reuses the stored one.
        reload: restart the bot when its source changes.
        chaos: the simulator's chaos mode spec (``--chaos``), or ``None`` for none.
        store: the bot's storage URL (``--store``), given to it as ``IMBOT_STORE``.
    """

    port: int = 8787
    bot_port: int = 8788
    db: str = DEFAULT_SIM_DB
    admin_key: str | None = field(default=None, repr=False)
    reload: bool = True
    chaos: str | None = None
    store: str | None = None


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot dev`` and its options."""
    parser = subparsers.add_parser(
        "dev",
        help="run a bot against the local simulator, reloading on save",
        description="Start the simulator and the bot together: the bot's identity is created "
        "in the simulator and subscribed to its webhook, the chat page URL is printed, and "
        "the bot restarts whenever its source changes (the simulator keeps its data).",
    )
    add_app_argument(parser)
    parser.add_argument(
        "--port", type=int, default=8787, help="simulator port (default: %(default)s; 0 = free)"
    )
    parser.add_argument(
        "--bot-port",
        type=int,
        default=8788,
        help="the bot's webhook port (default: %(default)s; 0 = free)",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_SIM_DB,
        help="simulator SQLite file, or :memory: (default: %(default)s)",
    )
    parser.add_argument(
        "--admin-key",
        default=None,
        help="simulator admin API key (default: $IMBOT_SIM_ADMIN_KEY, else the stored one)",
    )
    parser.add_argument(
        "--no-reload", action="store_true", help="do not restart the bot when files change"
    )
    parser.add_argument(
        "--chaos",
        default=None,
        metavar="SPEC",
        help="run the simulator in chaos mode: a preset (mild, bad-day) and/or key=value "
        "pairs, e.g. 'seed=7,api=10%%,webhooks=10%%' (see docs/simulator.md)",
    )
    add_store_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot dev`` with the parsed arguments; return the exit code."""
    options = DevOptions(
        port=args.port,
        bot_port=args.bot_port,
        db=args.db,
        admin_key=resolve_sim_admin_key(args.admin_key),
        reload=not args.no_reload,
        chaos=args.chaos,
        store=args.store,
    )

    def work() -> None:
        run_dev(load_app_waiting(args.app, reload=options.reload), options)

    return guard("dev", work, port=args.port, host=_LOOPBACK)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Credentials:
    api_key: str = field(repr=False)
    signing_key: str = field(repr=False)


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

    def __init__(self, app: str, port: int, *, env: dict[str, str]) -> None:
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
            _LOOPBACK,
            "--port",
            str(self.port),
            "--parent-pid",
            str(os.getpid()),
            # Its errors are this command's: `imbot dev: error: ...`.
            "--command-name",
            "dev",
            # The key and the simulator are this process's own: nothing to check.
            "--no-api-check",
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
                stream = await anyio.connect_tcp(_LOOPBACK, self.port)
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


def _announce(
    app: LoadedApp, sim: Simulator, handle: str, webhook: str, *, reload: bool, bot: _BotProcess
) -> None:
    where = shown(app.source)
    if bot.exited:
        # The bot's own error is printed above; say what happens next, once.
        bot.reported = True
        code = bot.process.returncode if bot.process is not None else None
        then = "save a fix and it starts" if reload else "fix it and restart imbot dev"
        first = (
            f"imbot dev: the simulator is running, but @{handle} did not start "
            f"(exit code {code}, see above); {then}"
        )
    else:
        first = f"imbot dev: @{handle} is running in the simulator"
    lines = [
        first,
        f"  Chat page:    {sim.chat_url}",
        f"  Text:         connect @{handle}   to {sim.triage_number}   (on the chat page, "
        "or with `imbot chat`)",
        f"  Simulator:    {sim.base_url}   (Inkbox API under /api/v1; admin key {sim.admin_key})",
        f"  Bot webhook:  {webhook}",
    ]
    if reload:
        lines.append(f"  Reloads when {where} or a .py file next to it changes.")
    chaos = sim.chaos.config
    if sim.chaos.enabled and chaos is not None:
        lines.append(f"  Chaos mode:   {chaos.spec()}   (switch it on the chat page)")
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

    bot_port = probe_ports(options.port, options.bot_port)
    try:
        sim = Simulator(
            db=options.db,
            port=options.port,
            admin_key=options.admin_key,
            delivery_delay=0.2,
            webhook_retry_delays=_DEV_RETRIES,
            chaos=options.chaos,
        )
    except ValueError as exc:
        raise DevError(str(exc)) from None
    handle = app.handle
    webhook = f"http://{_LOOPBACK}:{bot_port}/webhook"
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with sim:
            with sim.chaos.paused():  # setting up is not the bot's bad day
                credentials = await _provision(sim, handle, webhook)
            env = child_environment(
                {
                    API_KEY_ENV: credentials.api_key,
                    BASE_URL_ENV: sim.base_url,
                    SIGNING_KEY_ENV: credentials.signing_key,
                    HANDLE_ENV: handle,
                    "PYTHONUNBUFFERED": "1",
                    **({STORE_ENV: options.store} if options.store else {}),
                }
            )
            bot = _BotProcess(app.spec.text, bot_port, env=env)
            watcher = SourceWatcher(app.source) if options.reload else None
            try:
                async with anyio.create_task_group() as tg:
                    await bot.start()
                    _announce(app, sim, handle, webhook, reload=options.reload, bot=bot)
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
        raise (single_exception(group) or group) from None
    _say("stopped")
