"""The ``imbot`` command line: ``run``, ``dev``, ``sim``, ``chat`` and ``setup``.

To add a subcommand, write ``_add_<name>(subparsers)`` (which registers its arguments and
sets ``handler``) and ``_run_<name>(args) -> int``, then list ``_add_<name>`` in
``_SUBCOMMANDS``. The work itself lives in one module per command (``imbot.cli.dev``,
``imbot.cli.chat``, ``imbot.cli.setup``), imported only when that command runs, so that
``imbot run`` starts fast.

Every expected failure (no API key, unknown handle, API unreachable, port in use, an APP
that cannot be imported) is printed as one line that says how to fix it, with exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from imbot.errors import ImbotError

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_USAGE = 2

_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _fail(command: str, message: str) -> int:
    print(f"imbot {command}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _explain(exc: BaseException, *, host: str = "127.0.0.1", port: int | None = None) -> str:
    """One line that says what went wrong and what to do about it."""
    from imbot.errors import ConnectError, Forbidden, InkboxError, TransportError, Unauthorized

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
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use; stop the other process or pick another "
            "port with --port (--port 0 picks a free one)"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EADDRNOTAVAIL):
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    message = str(exc)
    if "no webhook signing key" in message:
        message += "; `imbot setup --url https://<public>/webhook` saves one"
    return message


def _guard(
    command: str, work: Callable[[], None], *, host: str = "", port: int | None = None
) -> int:
    """Run a command; turn the failures a user can fix into one line and exit code 2."""
    try:
        work()
    except KeyboardInterrupt:
        return EXIT_OK
    except (ImbotError, OSError) as exc:
        return _fail(command, _explain(exc, host=host, port=port))
    return EXIT_OK


# --------------------------------------------------------------------------- run


def _add_run(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="serve a bot's webhook (production)",
        description="Serve the bot's webhook with the settings from the environment: "
        "INKBOX_API_KEY, IMBOT_SIGNING_KEY, IMBOT_HANDLE, INKBOX_BASE_URL. Stops gracefully "
        "on SIGINT or SIGTERM (running handlers finish first).",
    )
    _app_argument(parser)
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
    parser.set_defaults(handler=_run_run)


def _app_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "app",
        metavar="APP",
        help="the bot: path/to/file.py or package.module, optionally :attribute "
        "(default attribute: bot)",
    )


def _watch_parent(parent: int) -> None:
    """Stop this process (as if by SIGTERM) once its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="imbot-parent-watch", daemon=True).start()


def _run_run(args: argparse.Namespace) -> int:
    from imbot.cli.apploader import load_app

    if args.parent_pid is not None:
        _watch_parent(args.parent_pid)

    def work() -> None:
        app = load_app(args.app)
        app.bot.run(host=args.host, port=args.port, path=args.path, log_level=args.log_level)

    return _guard("run", work, host=args.host, port=args.port)


# --------------------------------------------------------------------------- dev


def _add_dev(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run a bot against the local simulator, reloading on save",
        description="Start the simulator and the bot together: the bot's identity is created "
        "in the simulator and subscribed to its webhook, the chat page URL is printed, and "
        "the bot restarts whenever its source changes (the simulator keeps its data).",
    )
    _app_argument(parser)
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
        default=os.path.join(".imbot", "sim.sqlite3"),
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
    parser.set_defaults(handler=_run_dev)


def _run_dev(args: argparse.Namespace) -> int:
    from imbot.cli.apploader import load_app
    from imbot.cli.dev import DevOptions, run_dev

    options = DevOptions(
        port=args.port,
        bot_port=args.bot_port,
        db=args.db,
        admin_key=args.admin_key,
        reload=not args.no_reload,
    )

    def work() -> None:
        run_dev(load_app(args.app), options)

    return _guard("dev", work, port=args.port, host="127.0.0.1")


# --------------------------------------------------------------------------- sim


def _add_sim(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the local Inkbox-compatible iMessage simulator",
        description="Run a local Inkbox-compatible iMessage server with a chat page for "
        "playing the human. Its API works with imbot and with the official inkbox SDK.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8787, help="TCP port (default: %(default)s; 0 = any free port)"
    )
    parser.add_argument(
        "--db",
        default=os.path.join(".imbot", "sim.sqlite3"),
        help="SQLite file, or :memory: (default: %(default)s)",
    )
    parser.add_argument(
        "--admin-key",
        default=None,
        help="admin API key (default: $IMBOT_SIM_ADMIN_KEY, else one generated once and "
        "kept in the database)",
    )
    parser.add_argument(
        "--triage-number",
        default="+15550100000",
        help="the router number humans text 'connect @handle' to (default: %(default)s)",
    )
    parser.add_argument(
        "--delivery-delay",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="seconds from 'sent' to 'delivered' (default: %(default)s)",
    )
    parser.add_argument(
        "--send-cap",
        type=int,
        default=100,
        metavar="N",
        help="sends per identity per rolling 24 h; 0 = no cap (default: %(default)s)",
    )
    parser.add_argument(
        "--no-connect-event",
        action="store_true",
        help="do not deliver the human's 'connect @handle' text to the agent as "
        "imessage.received (Inkbox's documented default)",
    )
    parser.add_argument(
        "--unreachable",
        nargs="+",
        action="extend",
        default=[],
        metavar="NUMBER",
        help="phone numbers whose deliveries fail (status 'error')",
    )
    parser.set_defaults(handler=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    from imbot.cli.sim import serve_simulator
    from imbot.sim import Simulator

    admin_key = args.admin_key or os.environ.get("IMBOT_SIM_ADMIN_KEY") or None
    try:
        sim = Simulator(
            db=args.db,
            host=args.host,
            port=args.port,
            admin_key=admin_key,
            triage_number=args.triage_number,
            delivery_delay=args.delivery_delay,
            send_cap=args.send_cap if args.send_cap > 0 else None,
            connect_event=not args.no_connect_event,
            unreachable=args.unreachable,
        )
    except ValueError as exc:
        return _fail("sim", str(exc))
    code = _guard("sim", lambda: serve_simulator(sim), host=args.host, port=args.port)
    if code == EXIT_OK:
        print("imbot sim: stopped", file=sys.stderr)
    return code


# --------------------------------------------------------------------------- chat


def _add_chat(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="chat with a bot from the terminal, as the human",
        description="Text a bot running in the simulator: each line you type is sent from "
        "your phone number; the bot's replies, typing, Delivered/Read and tapbacks are "
        "printed as they happen. Reads standard input, so it also works in a pipe.",
    )
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8787",
        help="the simulator's address (default: %(default)s)",
    )
    parser.add_argument(
        "--phone", default="+15551234567", help="your phone number, E.164 (default: %(default)s)"
    )
    parser.add_argument(
        "--to",
        default=None,
        metavar="HANDLE",
        help="the agent to text (default: your most recent conversation)",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=None,
        metavar="SECONDS",
        help="when input ends, wait until nothing arrived for this long (default: 2, or 0.5 "
        "in a terminal)",
    )
    parser.set_defaults(handler=_run_chat)


def _run_chat(args: argparse.Namespace) -> int:
    from imbot.cli.chat import ChatOptions, run_chat

    linger = args.linger
    if linger is None:
        linger = 0.5 if sys.stdin.isatty() else 2.0
    options = ChatOptions(
        url=args.url.rstrip("/"),
        phone=args.phone.strip(),
        to=args.to.removeprefix("@") if args.to else None,
        linger=linger,
    )
    return _guard("chat", lambda: run_chat(options))


# --------------------------------------------------------------------------- setup


def _add_setup(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "setup",
        help="connect an Inkbox identity to your bot's public webhook URL",
        description="Against the Inkbox API in the environment (INKBOX_API_KEY, "
        "INKBOX_BASE_URL): enable iMessage on the identity, create or update its webhook "
        "subscription for the five iMessage events, and save the signing key to a private "
        "file. If the identity already had a key that is not saved here, the key is rotated.",
    )
    parser.add_argument(
        "--url",
        required=True,
        help="the bot's public webhook URL, e.g. https://bot.example/webhook",
    )
    parser.add_argument(
        "--handle",
        default=None,
        help="the agent handle (default: $IMBOT_HANDLE, else the API key's only identity)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=Path(".imbot") / "signing-key",
        help="where to save the signing key, mode 0600 (default: %(default)s)",
    )
    parser.add_argument(
        "--print-signing-key",
        action="store_true",
        help="also print the signing key (it is never printed otherwise)",
    )
    parser.add_argument(
        "--rotate-signing-key",
        action="store_true",
        help="make a new signing key even if one is saved (running bots need the new one)",
    )
    parser.set_defaults(handler=_run_setup)


def _run_setup(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _fail("setup", f"--url must be an https:// URL, not {args.url!r}")

    import anyio

    from imbot.cli.setup import SetupOptions, run_setup

    options = SetupOptions(
        url=args.url,
        handle=args.handle,
        key_file=args.key_file,
        print_key=args.print_signing_key,
        rotate=args.rotate_signing_key,
    )
    return _guard("setup", lambda: anyio.run(run_setup, options))


# --------------------------------------------------------------------------- main

_SUBCOMMANDS: tuple[Callable[[_Subparsers], None], ...] = (
    _add_run,
    _add_dev,
    _add_sim,
    _add_chat,
    _add_setup,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``imbot`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="imbot",
        description="Build iMessage bots and AI agents on the Inkbox iMessage API.",
        epilog="Start here: imbot dev examples/echo.py  (then open the chat page it prints). "
        "Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"imbot {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def _version() -> str:
    from imbot._version import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``imbot`` command line; return the exit code.

    Example:
        >>> main(["run", "examples/echo.py", "--port", "8000"])  # doctest: +SKIP

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when omitted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command != "run":  # `imbot run` leaves logging to bot.run()
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return handler(args)
