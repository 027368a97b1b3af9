"""``imbot run``: serve a bot's webhook in production, until SIGINT or SIGTERM.

It is ``bot.run(host, port, path)`` for the ``Bot`` an APP names. Only the parser is built
at import; the bot and the server are imported when the command runs, so that it listens
within a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

from imbot.cli._common import Subparsers, guard
from imbot.cli.apploader import add_app_argument, load_app

if TYPE_CHECKING:
    pass

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot run`` and its options."""
    parser = subparsers.add_parser(
        "run",
        help="serve a bot's webhook (production)",
        description="Serve the bot's webhook with the settings from the environment: "
        "INKBOX_API_KEY, IMBOT_SIGNING_KEY, IMBOT_HANDLE, INKBOX_BASE_URL. Stops gracefully "
        "on SIGINT or SIGTERM (running handlers finish first).",
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
    # Set by `imbot dev`: the bot exits when the dev server that started it is gone.
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot run`` with the parsed arguments; return the exit code."""
    if args.parent_pid is not None:
        _watch_parent(args.parent_pid)

    def work() -> None:
        app = load_app(args.app)
        app.bot.signing_keys()  # before start-up: a missing key starts nothing
        app.bot.run(host=args.host, port=args.port, path=args.path, log_level=args.log_level)

    return guard("run", work, host=args.host, port=args.port)


def _watch_parent(parent: int) -> None:
    """Stop this process (as if by SIGTERM) once its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="imbot-parent-watch", daemon=True).start()
