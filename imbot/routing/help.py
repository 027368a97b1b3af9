"""The commands a router tree understands, and the help message that lists them. Pure.

A hidden command (``@bot.command("connect")``, or any registered with ``hidden=True``) is in
``bot.commands`` but not in the help message: it works, it is just not advertised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from imbot.routing.commands import CommandInfo
from imbot.routing.table import usage_prefix

if TYPE_CHECKING:
    from imbot.routing.router import Router

__all__ = ["help_text", "list_commands"]


def list_commands(root: Router, prefixes: Sequence[str]) -> list[CommandInfo]:
    """The registered commands of a router tree, in registration order.

    Args:
        root: the bot (or top router).
        prefixes: the accepted command prefixes; usage lines show the one to type.
    """
    prefix = usage_prefix(prefixes)
    found = []
    for spec in root.handlers():
        if spec.command is None or spec.command_name is None:
            continue
        usage = spec.command.usage(spec.command_name, prefix)
        found.append(CommandInfo(spec.command_name, spec.aliases, usage, spec.summary, spec.hidden))
    return found


def help_text(commands: Sequence[CommandInfo]) -> str:
    """A help message listing commands with their usage, summary and aliases; not the hidden."""
    shown = [command for command in commands if not command.hidden]
    if not shown:
        return "This bot has no commands: just write to it."
    lines = ["Commands:"]
    for command in shown:
        line = command.usage
        if command.summary:
            line += f" — {command.summary}"
        if command.aliases:
            line += f" (also: {', '.join(command.aliases)})"
        lines.append(line)
    return "\n".join(lines)
