"""``imbot dead-letters``: list the events a bot gave up on, and queue them to run again.

It works on the inbox itself (``--inbox sqlite:///bot.db``, ``--inbox redis://host:6379/0``),
with the bot running or not: ``replay`` makes the events pending again. A SQLite inbox's
bot handles them at its next start (on a running bot, ``await
bot.replay_dead_letter(event_id)`` handles one at once); a Redis inbox is shared, so a
running worker picks them up within half a lease, from any machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import anyio

from imbot.cli._common import EXIT_OK, Subparsers, fail, guard

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot dead-letters`` with its ``list`` and ``replay`` actions."""
    parser = subparsers.add_parser(
        "dead-letters",
        help="list or replay the events a bot gave up on",
        description="Dead letters are events whose handler kept failing on transient API "
        "errors past the retry deadline, or whose handling crashed the bot again and "
        "again. They are kept in the bot's durable inbox.",
    )
    parser.add_argument(
        "action", choices=("list", "replay"), help="list them, or make them pending again"
    )
    parser.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="events to replay")
    parser.add_argument(
        "--inbox",
        required=True,
        metavar="URL",
        help="the bot's inbox, as given to Bot(inbox=...) or store=..., e.g. "
        "sqlite:///bot.db or redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--all", action="store_true", help="replay every dead letter")
    parser.add_argument("--json", action="store_true", help="list as JSON lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List or replay dead letters; return the exit code."""
    if args.action == "replay" and not (args.event_ids or args.all):
        return fail("dead-letters", "replay needs EVENT_ID... or --all")
    if args.inbox.startswith("memory"):
        return fail(
            "dead-letters",
            "a memory inbox keeps nothing once the bot stops; dead letters are kept by a "
            "durable inbox (Bot(inbox='sqlite:///bot.db') or Bot(store='redis://...'))",
        )
    outcome: list[int] = []

    def work() -> None:
        outcome.append(anyio.run(_run, args))

    code = guard("dead-letters", work)
    return outcome[0] if outcome and code == EXIT_OK else code


def _when(url: str) -> str:
    """When the replayed events run, for the inbox ``url`` names."""
    if url.startswith(("redis://", "rediss://")):
        return "a running worker handles them within a few seconds (or the bot at its start)"
    return "the bot handles them at its next start"


async def _run(args: argparse.Namespace) -> int:
    from imbot.storage import open_inbox_store

    store = open_inbox_store(args.inbox)
    try:
        letters = await store.dead_letters()
        if args.action == "list":
            for letter in letters:
                if args.json:
                    print(
                        json.dumps(
                            {
                                "event_id": letter.event_id,
                                "reason": letter.reason,
                                "attempts": letter.attempts,
                                "error": letter.error,
                                "dead_at": letter.dead_at,
                            }
                        )
                    )
                else:
                    when = datetime.datetime.fromtimestamp(letter.dead_at, datetime.UTC)
                    print(
                        f"{letter.event_id}  {when:%Y-%m-%d %H:%M:%S}Z  {letter.reason}  "
                        f"{letter.attempts} attempt(s)  {letter.error}"
                    )
            if not letters and not args.json:
                print("no dead letters", file=sys.stderr)
            return EXIT_OK
        wanted = [letter.event_id for letter in letters] if args.all else args.event_ids
        missing = []
        for event_id in wanted:
            if await store.requeue(event_id) is None:
                missing.append(event_id)
        replayed = len(wanted) - len(missing)
        print(f"{replayed} event(s) pending again; {_when(args.inbox)}")
        if missing:
            return fail("dead-letters", f"no dead letter with id {', '.join(missing)}")
        return EXIT_OK
    finally:
        await store.close()
