"""The ``imbot`` command line: the argument parser and the dispatch to one module per command.

Each command lives in its own module (``run``, ``dev``, ``sim``, ``chat``, ``setup``,
``dead_letters``), which
has the same two functions:

- ``add_parser(subparsers)`` registers the command and its options, and sets ``handler``;
- ``run(args) -> int`` does the work and returns the exit code.

To add a command, write such a module and list it in ``COMMANDS``. A command module imports
little at the top (building the parser imports every one of them); what only its work needs
is imported when it runs, so that ``imbot run`` starts fast.

Every expected failure (no API key, unknown handle, API unreachable, port in use, an APP
that cannot be imported) is printed as one line that says how to fix it, with exit code 2
(see ``imbot.cli._common``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Protocol

from imbot._version import __version__
from imbot.cli import chat, dead_letters, dev, run, setup, sim
from imbot.cli._common import EXIT_USAGE, Subparsers

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


class Command(Protocol):
    """The shape of a command module."""

    def add_parser(self, subparsers: Subparsers) -> None:
        """Register the command and its options; set ``handler`` to ``run``."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the command's work; return the exit code."""


COMMANDS: tuple[Command, ...] = (run, dev, sim, chat, setup, dead_letters)
"""The command modules, in the order ``imbot --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``imbot`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="imbot",
        description="Build iMessage bots and AI agents on the Inkbox iMessage API.",
        epilog="Start here: imbot dev examples/echo.py  (then open the chat page it prints). "
        "Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"imbot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


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
