"""Run the simulator in its own process for the benchmark.

``python -m benchmarks.sim_server --db PATH`` starts ``imbot.sim.Simulator`` with SQLite
persistence at ``PATH``, ``delivery_delay=0`` and no send cap, prints
``READY {"base_url": ..., "admin_key": ...}`` and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import sys

import anyio

from benchmarks.profiling import PROFILERS, arm


async def serve(db: str, profile: tuple[str, pathlib.Path] | None = None) -> None:
    """Start the simulator, announce it, wait for a stop signal."""
    from imbot.sim import Simulator

    async with Simulator(
        db=db,
        host="127.0.0.1",
        port=0,
        delivery_delay=0.0,
        send_cap=None,
        webhook_retry_delays=(0.5, 1.0, 2.0),
        webhook_timeout=10.0,
    ) as sim:
        if profile is not None:
            arm(*profile)
        ready = {"base_url": sim.base_url, "admin_key": sim.admin_key}
        sys.stdout.write(f"READY {json.dumps(ready)}\n")
        sys.stdout.flush()
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m benchmarks.sim_server``."""
    parser = argparse.ArgumentParser(description="the simulator, for the benchmark")
    parser.add_argument("--db", required=True)
    parser.add_argument("--profile", choices=PROFILERS, help="arm a profiler on SIGUSR1/2")
    parser.add_argument("--profile-stem", help="where the profile report goes (no suffix)")
    args = parser.parse_args(argv)
    profile = None
    if args.profile:
        profile = (args.profile, pathlib.Path(args.profile_stem))
    anyio.run(serve, args.db, profile)


if __name__ == "__main__":
    main()
