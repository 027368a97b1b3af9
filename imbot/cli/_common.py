"""What every command module shares: the subparsers type and the one-line failure.

Every expected failure (no API key, unknown handle, API unreachable, port in use, an APP
that cannot be imported) is printed as ``imbot <command>: error: <one line>``, a line that
says how to fix it, with exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from typing import TypeAlias

from imbot.errors import (
    ConnectError,
    Forbidden,
    ImbotError,
    InkboxError,
    MissingSigningKey,
    TransportError,
    Unauthorized,
)
from imbot.net import listen_error_message

__all__ = [
    "DEFAULT_SIM_DB",
    "EXIT_OK",
    "EXIT_USAGE",
    "Subparsers",
    "add_store_argument",
    "explain",
    "fail",
    "guard",
]

DEFAULT_SIM_DB = os.path.join(".imbot", "sim.sqlite3")
"""The simulator's database for ``imbot sim`` and ``imbot dev`` unless ``--db`` says otherwise."""

EXIT_OK = 0
"""The exit code of a command that did its work (or was stopped with Ctrl-C)."""

EXIT_USAGE = 2
"""The exit code of a failure the user can fix, as for a bad flag."""

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_parser(subparsers)`` receives: ``imbot``'s subcommand registry."""

# Errors a failed bind carries; anything else with an errno is reported as it is.
_LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--store URL`` (``imbot run``, ``imbot dev``): where the inbox and ``ctx.state`` live.

    The bot gets it as ``IMBOT_STORE``, so a store its code names still wins.
    """
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="where events and ctx.state are kept: memory://, sqlite:///bot.db, "
        "redis://host:6379/0 (default: $IMBOT_STORE, else what the bot's code says, "
        "else memory)",
    )


def fail(command: str, message: str) -> int:
    """Print ``imbot <command>: error: <message>`` to standard error; return ``EXIT_USAGE``."""
    print(f"imbot {command}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def explain(exc: BaseException, *, host: str = "127.0.0.1", port: int | None = None) -> str:
    """One line that says what went wrong and what to do about it.

    Args:
        exc: the failure.
        host: the interface the command listens on, for a port that cannot be bound.
        port: the port given with ``--port``, likewise.
    """
    if isinstance(exc, Unauthorized):
        return (
            f"the API key was rejected ({exc}); check INKBOX_API_KEY (or api_key in "
            "~/.inkbox/config)"
        )
    if isinstance(exc, Forbidden):
        return f"the API key may not do this ({exc}); use an admin key or the identity's own key"
    if isinstance(exc, ConnectError):
        return f"cannot reach the Inkbox API ({exc}); check INKBOX_BASE_URL and your network"
    if isinstance(exc, TransportError):
        return f"the Inkbox API did not answer properly ({exc}); try again"
    if isinstance(exc, InkboxError):
        return f"the Inkbox API refused: {exc}"
    if isinstance(exc, OSError) and exc.errno in _LISTEN_ERRNOS and port is not None:
        return listen_error_message(host, port, exc, how="--port")
    if isinstance(exc, MissingSigningKey):
        return f"{exc}; `imbot setup --url https://<public>/webhook` saves one"
    return str(exc)


def guard(
    command: str, work: Callable[[], None], *, host: str = "", port: int | None = None
) -> int:
    """Run a command's work; turn the failures a user can fix into one line and exit code 2.

    Args:
        command: the command's name, for the message.
        work: the command itself.
        host: the interface it listens on, if any (see ``explain``).
        port: the port given with ``--port``, if any.

    Returns:
        ``EXIT_OK``, also after Ctrl-C; ``EXIT_USAGE`` after a failure it explained.
    """
    try:
        work()
    except KeyboardInterrupt:
        return EXIT_OK
    except (ImbotError, OSError) as exc:
        return fail(command, explain(exc, host=host, port=port))
    return EXIT_OK
