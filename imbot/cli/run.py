"""``imbot run``: serve a bot's webhook in production, until SIGINT or SIGTERM.

It is ``bot.run(host, port, path)`` for the ``Bot`` an APP names, after three checks that
turn a mistake into one line each, before anything starts:

1. every missing setting is named at once (the API key and the signing key);
2. the port can be bound;
3. one cheap call (``GET /imessage/triage-number``, allowed for any key) proves that the API
   answers at the base URL and accepts the key.

Only the parser is built at import; the bot and the server are imported when the command
runs, so that it listens within a fraction of a second (the check is one round trip more).

``--workers N`` (N > 1) runs N such processes on the port instead, under a supervisor
(``imbot.cli.workers``); it needs a store the processes share (``--store redis://...``),
and the checks above run once, in the supervisor. ``--store URL`` is ``IMBOT_STORE``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from imbot.cli._common import EXIT_USAGE, Subparsers, add_store_argument, explain, fail, guard
from imbot.cli.apploader import add_app_argument, load_app
from imbot.errors import ConfigError

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.config import Settings

__all__ = [
    "API_CHECK_TIMEOUT",
    "add_parser",
    "check_api",
    "missing_settings",
    "run",
    "use_store",
    "workers_problems",
]

API_CHECK_TIMEOUT = 10.0
"""Seconds the start-up check gives the API to answer (one attempt)."""


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot run`` and its options."""
    parser = subparsers.add_parser(
        "run",
        help="serve a bot's webhook (production)",
        description="Serve the bot's webhook with the settings from the environment: "
        "INKBOX_API_KEY, IMBOT_SIGNING_KEY, IMBOT_HANDLE, INKBOX_BASE_URL. Before serving, "
        "one API call checks the key and the base URL. Stops gracefully on SIGINT or "
        "SIGTERM (running handlers finish first).",
    )
    add_app_argument(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port (default: %(default)s; 0 = any free)"
    )
    parser.add_argument(
        "--path", default="/webhook", help="the webhook route (default: %(default)s)"
    )
    parser.add_argument(
        "--log-level",
        default=None,
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING... (default: $IMBOT_LOG_LEVEL, else INFO)",
    )
    parser.add_argument(
        "--no-api-check",
        action="store_true",
        help="serve without first checking the API key and base URL with one call",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve with N processes sharing the port (Linux); N > 1 needs a shared store "
        "such as Redis (default: %(default)s)",
    )
    add_store_argument(parser)
    # Set by `imbot dev`: the bot exits when the dev server that started it is gone, and
    # its errors are `imbot dev`'s.
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--command-name", default="run", help=argparse.SUPPRESS)
    # Set by `imbot run --workers`: this process is worker N, sharing the port, and says
    # on the pipe FD when it listens.
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot run`` with the parsed arguments; return the exit code."""
    name = args.command_name
    if args.workers < 1:
        return fail(name, f"--workers must be at least 1, got {args.workers}")
    if args.parent_pid is not None:
        _watch_parent(args.parent_pid)
    if args.store is not None:
        use_store(args.store)
    loaded: list[Bot] = []
    code = guard(name, lambda: loaded.append(load_app(args.app).bot))
    if not loaded:
        return code
    bot = loaded[0]
    problems = missing_settings(bot)
    if args.workers > 1:
        try:
            problems += workers_problems(bot, args.workers)
        except ConfigError as exc:  # a malformed storage URL
            problems.append(explain(exc))
    if problems:
        for problem in problems:
            fail(name, problem)
        return EXIT_USAGE
    if args.workers > 1:
        return _serve_workers(args, bot)

    def work() -> None:
        from imbot.net import probe_port

        worker = args.worker_index is not None
        # A worker shares the port with its siblings and the parent that holds it.
        probe_port(args.host, args.port, how="--port", reuse_port=worker)
        _check_api_once(args, bot)
        _log_forgotten_awaits()
        if not worker:
            bot.run(host=args.host, port=args.port, path=args.path, log_level=args.log_level)
            return
        _run_worker(args, bot)

    return guard(name, work, host=args.host, port=args.port)


def _check_api_once(args: argparse.Namespace, bot: Bot) -> None:
    if args.no_api_check:
        return
    note = check_api(bot.api_settings())
    if note is not None:
        print(
            f"imbot {args.command_name}: warning: could not check the API key at start "
            f"({note}); serving anyway",
            file=sys.stderr,
            flush=True,
        )


def _serve_workers(args: argparse.Namespace, bot: Bot) -> int:
    """Check once what every worker would check, hold the port, and supervise the workers."""
    from imbot.cli.workers import Supervisor, WorkerSpec
    from imbot.net import probe_port, reserve_port

    held: list[socket.socket] = []

    def prepare() -> None:
        # Probed as a plain socket first: a port some other group of workers serves is
        # taken, and reserving it would join that group instead.
        probe_port(args.host, args.port, how="--port")
        held.append(reserve_port(args.host, args.port, how="--port"))
        _check_api_once(args, bot)

    code = guard(args.command_name, prepare, host=args.host, port=args.port)
    if not held:
        return code
    with held[0]:
        spec = WorkerSpec(
            app=args.app,
            count=args.workers,
            host=args.host,
            port=int(held[0].getsockname()[1]),
            path=args.path,
            log_level=args.log_level,
            store=args.store,
        )
        return Supervisor(spec, log_level=args.log_level).run()


def _run_worker(args: argparse.Namespace, bot: Bot) -> None:
    """Serve as worker ``--worker-index``: share the port, tell the supervisor once listening."""
    import structlog

    from imbot.bot.runner import run as run_bot
    from imbot.cli.workers import notify_ready

    # Every line this worker logs says which worker it is.
    structlog.contextvars.bind_contextvars(worker=args.worker_index)
    ready_fd = args.ready_fd

    def listening(_port: int) -> None:
        if ready_fd is not None:
            notify_ready(ready_fd)

    run_bot(
        bot,
        args.host,
        args.port,
        args.path,
        log_level=args.log_level,
        reuse_port=True,
        on_listening=listening,
    )


def use_store(url: str) -> None:
    """Make ``url`` the store of the bot this process runs: ``--store`` is ``IMBOT_STORE``.

    Set before the APP is imported, read when the bot starts; a store the bot's code names
    still wins, as an argument does over the environment for every setting.
    """
    from imbot.config import STORE_ENV

    os.environ[STORE_ENV] = url


def workers_problems(bot: Bot, workers: int) -> list[str]:
    """What keeps ``bot`` from running as ``workers`` processes, one line each.

    Several processes behave as one bot only if they share the dedupe window, the order of
    each conversation, ``ctx.state`` and the open ``ctx.ask`` questions: that is, one store
    every worker reaches (Redis). Memory is per process, and a SQLite file is not made for
    several writers serving one conversation's order.

    Args:
        bot: the bot, loaded but not started.
        workers: the number asked for with ``--workers``.

    Returns:
        The problems; empty when the workers can start.
    """
    from imbot.net import reuse_port_supported

    problems = []
    if not reuse_port_supported():
        problems.append(
            f"--workers {workers} needs Linux, whose SO_REUSEPORT spreads connections "
            "between processes sharing a port; here, run one `imbot run --port ...` per "
            "port behind a load balancer"
        )
    if not bot.shared_store:
        problems.append(
            f"--workers {workers} needs a store the workers share, and this bot keeps its "
            "events and state in this process (memory or SQLite): each worker would have "
            "its own dedupe window, its own order per conversation, its own ctx.state and "
            "ctx.ask, so a message could be handled twice or out of order. Give it Redis: "
            "--store redis://host:6379/0 (or IMBOT_STORE, or Bot(store=...)); or run "
            "--workers 1"
        )
    return problems


def missing_settings(bot: Bot) -> list[str]:
    """What keeps ``bot`` from serving, one line each: every missing or invalid setting.

    Args:
        bot: the bot to serve.

    Returns:
        The problems, each with its fix; empty when the bot can start.
    """
    problems = []
    for read in (bot.api_settings, bot.signing_keys):
        try:
            read()
        except ConfigError as exc:
            problems.append(explain(exc))
    return problems


def check_api(settings: Settings) -> str | None:
    """Make one cheap call with the bot's key at its base URL: does the API answer and accept it?

    ``GET /imessage/triage-number`` is allowed for any key, admin or identity-scoped; a
    ``404`` (no router number is active) still proves the key and the URL. One attempt: a
    key that is rejected or an API that cannot be reached is an answer, not a blip. A
    failure that may pass (a ``5xx``, a ``429``, a timeout) does not stop the bot, whose
    handlers retry such failures anyway: it comes back as a note to print.

    Args:
        settings: the bot's API key and base URL.

    Returns:
        ``None`` when the API accepted the key; otherwise what went wrong, for a warning.

    Raises:
        Unauthorized: the key was rejected.
        Forbidden: the key may not call the API.
        ConnectError: nothing answers at the base URL.
        ConfigError: something answers there, but not as the Inkbox API.
    """
    import anyio

    from imbot.client.client import InkboxClient
    from imbot.errors import (
        ConnectError,
        Forbidden,
        InkboxError,
        NotFound,
        RateLimited,
        ServerError,
        TransportError,
        Unauthorized,
    )

    async def call() -> str | None:
        client = InkboxClient(settings=settings, timeout=API_CHECK_TIMEOUT, max_attempts=1)
        async with client:
            try:
                await client.get_triage_number()
            except NotFound:
                return None  # the key was accepted; the router number is just not active
            except (Unauthorized, Forbidden, ConnectError):
                raise  # an answer about the key or the address: before the broader cases
            except (RateLimited, ServerError, TransportError) as exc:
                return f"{type(exc).__name__}: {exc}"
            except InkboxError as exc:
                # Another refusal means the URL answers but is not the Inkbox API.
                raise ConfigError(
                    f"{settings.base_url} does not answer as the Inkbox API ({exc}); "
                    "check INKBOX_BASE_URL"
                ) from None
        return None

    return anyio.run(call)


def _log_forgotten_awaits() -> None:
    """Log a coroutine that was never awaited as an error that says what to do.

    ``ctx.reply("hi")`` without ``await`` sends nothing; Python only prints a warning when
    the coroutine is collected. The process is this command's, so its warnings are too:
    each such warning becomes one log line (``imbot dev`` shows the bot's log).
    """
    import linecache
    import re
    import warnings

    from imbot.log import get_logger

    never_awaited = re.compile(r"coroutine '(?P<name>[^']+)' was never awaited")
    log = get_logger("imbot")
    previous = warnings.showwarning
    warnings.filterwarnings("always", message=never_awaited.pattern, category=RuntimeWarning)

    def show(  # noqa: PLR0917 - the signature of warnings.showwarning
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        found = never_awaited.match(str(message))
        if found is None or not issubclass(category, RuntimeWarning):
            previous(message, category, filename, lineno, file, line)
            return
        log.error(
            "a coroutine was never awaited, so it did nothing: did you forget `await`?",
            coroutine=found["name"],
            at=f"{filename}:{lineno}",
            code=linecache.getline(filename, lineno).strip() or None,
        )

    warnings.showwarning = show


def _watch_parent(parent: int) -> None:
    """Stop this process (as if by SIGTERM) once its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="imbot-parent-watch", daemon=True).start()
