"""``imbot sim``: run the simulator in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from imbot.sim import Simulator

__all__ = ["serve_simulator"]


def _announce(sim: Simulator) -> None:
    lines = [
        "imbot simulator is running",
        f"  Base URL:       {sim.base_url}   (Inkbox API under /api/v1)",
        f"  Admin API key:  {sim.admin_key}",
        f"  Triage number:  {sim.triage_number}   (humans text: connect @handle)",
        f"  Chat page:      {sim.chat_url}",
        "Press Ctrl-C to stop.",
    ]
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
