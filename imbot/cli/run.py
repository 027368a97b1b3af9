"""``imbot run``: serve a bot's webhook in production, until SIGINT or SIGTERM.

It is ``bot.run(host, port, path)`` for the ``Bot`` an APP names, after three checks that
turn a mistake into one line each, before anything starts:

1. every missing setting is named at once (the API key and the signing key);
2. the port can be bound;
3. one cheap call (``GET /imessage/triage-number``, allowed for any key) proves that the API
   answers at the base URL and accepts the key.

Only the parser is built at import; the bot and the server are imported when the command
runs, so that it listens within a fraction of a second (the check is one round trip more).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from imbot.cli._common import EXIT_USAGE, Subparsers, explain, fail, guard
from imbot.cli.apploader import add_app_argument, load_app
from imbot.errors import ConfigError

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.config import Settings

__all__ = ["API_CHECK_TIMEOUT", "add_parser", "check_api", "missing_settings", "run"]

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
    # Set by `imbot dev`: the bot exits when the dev server that started it is gone, and
    # its errors are `imbot dev`'s.
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--command-name", default="run", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot run`` with the parsed arguments; return the exit code."""
    name = args.command_name
    if args.parent_pid is not None:
        _watch_parent(args.parent_pid)
    loaded: list[Bot] = []
    code = guard(name, lambda: loaded.append(load_app(args.app).bot))
    if not loaded:
        return code
    bot = loaded[0]
    problems = missing_settings(bot)
    if problems:
        for problem in problems:
            fail(name, problem)
        return EXIT_USAGE

    def work() -> None:
        from imbot.net import probe_port

        probe_port(args.host, args.port, how="--port")  # a taken port starts nothing
        if not args.no_api_check:
            note = check_api(bot.api_settings())
            if note is not None:
                print(
                    f"imbot {name}: warning: could not check the API key at start ({note}); "
                    "serving anyway",
                    file=sys.stderr,
                    flush=True,
                )
        _log_forgotten_awaits()
        bot.run(host=args.host, port=args.port, path=args.path, log_level=args.log_level)

    return guard(name, work, host=args.host, port=args.port)


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
