"""``imbot sim``: run the simulator in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from imbot.cli._common import DEFAULT_SIM_DB, EXIT_OK, Subparsers, fail, guard
from imbot.config import resolve_sim_admin_key

if TYPE_CHECKING:
    from imbot.sim import Simulator

__all__ = ["add_parser", "run", "serve_simulator"]


def add_parser(subparsers: Subparsers) -> None:
    """Register ``imbot sim`` and its options."""
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
        default=DEFAULT_SIM_DB,
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
        "--send-cap-window",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="the send cap's rolling window (default: %(default)s, Inkbox's 24 hours)",
    )
    connect = parser.add_mutually_exclusive_group()
    connect.add_argument(
        "--connect-event",
        dest="connect_event",
        action="store_true",
        default=False,
        help="the old connect flow: deliver the human's 'connect @handle' text to the agent "
        "as its first imessage.received, so it may greet at once (Inkbox does not)",
    )
    connect.add_argument(
        "--no-connect-event",
        dest="connect_event",
        action="store_false",
        help="deprecated, now the default: Inkbox's connect flow, where the agent hears "
        "nothing until the human's first message in the new thread",
    )
    parser.add_argument(
        "--unreachable",
        nargs="+",
        action="extend",
        default=[],
        metavar="NUMBER",
        help="phone numbers whose deliveries fail (status 'error')",
    )
    parser.add_argument(
        "--sms",
        nargs="+",
        action="extend",
        default=[],
        metavar="NUMBER",
        help="phone numbers without iMessage: sends go out as SMS (was_downgraded), "
        "and 'sent' is final",
    )
    parser.add_argument(
        "--declining",
        nargs="+",
        action="extend",
        default=[],
        metavar="NUMBER",
        help="phone numbers whose deliveries end 'declined' (imessage.delivery_failed)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable; '*' for any); "
        "loopback names and --host are always served",
    )
    parser.add_argument(
        "--chaos",
        default=None,
        metavar="SPEC",
        help="have a bad day on purpose, the same one for the same seed: API errors, slow "
        "answers, webhooks twice, late or after a failure; a preset (mild, bad-day) and/or "
        "key=value pairs, e.g. 'seed=7,api=10%%,webhooks=10%%' (see docs/simulator.md)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``imbot sim`` with the parsed arguments; return the exit code."""
    from imbot.sim import Simulator

    try:
        sim = Simulator(
            db=args.db,
            host=args.host,
            port=args.port,
            admin_key=resolve_sim_admin_key(args.admin_key),
            triage_number=args.triage_number,
            delivery_delay=args.delivery_delay,
            send_cap=args.send_cap if args.send_cap > 0 else None,
            send_cap_window=args.send_cap_window,
            connect_event=args.connect_event,
            unreachable=args.unreachable,
            sms_numbers=args.sms,
            declining_numbers=args.declining,
            allowed_hosts=args.allow_host,
            chaos=args.chaos,
        )
    except ValueError as exc:
        return fail("sim", str(exc))
    code = guard("sim", lambda: serve_simulator(sim), host=args.host, port=args.port)
    if code == EXIT_OK:
        print("imbot sim: stopped", file=sys.stderr)
    return code


def _announce(sim: Simulator) -> None:
    lines = [
        "imbot simulator is running",
        f"  Base URL:       {sim.base_url}   (Inkbox API under /api/v1)",
        f"  Admin API key:  {sim.admin_key}",
        f"  Triage number:  {sim.triage_number}   (humans text: connect @handle)",
        f"  Chat page:      {sim.chat_url}",
    ]
    chaos = sim.chaos.config
    if sim.chaos.enabled and chaos is not None:
        lines.append(f"  Chaos mode:     {chaos.spec()}   (switch it on the chat page)")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


async def _serve(sim: Simulator) -> None:
    # Signals are received (not raised as KeyboardInterrupt) so shutdown is orderly:
    # event streams close, in-flight answers finish, the database is closed.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with sim:
            _announce(sim)
            async for _ in signals:
                break


def serve_simulator(sim: Simulator) -> None:
    """Start ``sim``, print where it is, and run it until SIGINT or SIGTERM.

    Raises:
        OSError: the port cannot be bound (``errno.EADDRINUSE`` when it is taken).
        SetupError: the database holds another schema version.
    """
    anyio.run(_serve, sim)
