"""Profile imbot under load: the echo bot during one timed burst, or the simulator.

``python -m benchmarks.profile_load [--what bot|floor|sim] [--n N] [--profiler NAME]``

``bot``: starts the stub API and the echo bot in a child process with a profiler armed on
signals (see ``benchmarks/profiling.py``): it starts after the warm-up and stops after the
last reply. ``floor``: the same for the hand-written floor, to compare (cProfile reports
start with the own time summed per package). ``sim``: runs the simulator benchmark with
the simulator's process profiled during the timed sends. Reports land in ``--out``
(default ``$TMPDIR/imbot-bench-profiles``) as ``<what>-<profiler>.txt`` (plus ``.html``
for pyinstrument, ``.pstats`` for cProfile).

pyinstrument is a development tool, not a dependency: ``.venv/bin/pip install pyinstrument``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import sys
import tempfile
import time

import aiohttp

from benchmarks import procs
from benchmarks.contenders import ECHO_BOT, bot_env, cli_has_run
from benchmarks.driver import StubControl, conversation_ids, drive, plan_events, sign_all
from benchmarks.load import API_KEY, SECRET, WEBHOOK_PATH, start_stub
from benchmarks.profiling import PROFILERS, arm, done_marker

DEFAULT_OUT = pathlib.Path(tempfile.gettempdir()) / "imbot-bench-profiles"


def _target(what: str, profiler_name: str, stem: pathlib.Path, port: int, api_base: str) -> None:
    """Child side: arm the profiler, then run the echo bot as ``imbot run`` would (or the
    floor, for comparison)."""
    arm(profiler_name, stem)
    if what == "floor":
        from benchmarks import floor

        args = ["--port", str(port), "--api-base", api_base]
        floor.main([*args, "--api-key", API_KEY, "--secret", SECRET])
        return
    if cli_has_run():
        from imbot.cli import main as cli_main

        sys.exit(cli_main(["run", ECHO_BOT, "--host", "127.0.0.1", "--port", str(port)]))
    import runpy

    bot = runpy.run_path(ECHO_BOT)["bot"]
    bot.run(host="127.0.0.1", port=port)


async def _wait_file(path: pathlib.Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no profile written within {timeout} s")
        await asyncio.sleep(0.05)


async def profile_contender(
    what: str, n: int, concurrency: int, profiler: str, out: pathlib.Path
) -> pathlib.Path:
    """Profile the echo bot (or the floor) during one burst of ``n`` webhooks."""
    stem = out / f"{what}-{profiler}"
    done_marker(stem).unlink(missing_ok=True)
    stub = start_stub(out / "stub.log")
    port = procs.free_port()
    argv = [procs.PYTHON, "-m", "benchmarks.profile_load", "--target", "--what", what]
    argv += ["--profiler", profiler, "--out", str(out), "--port", str(port)]
    argv += ["--api-base", stub.base_url]
    proc = procs.spawn(argv, env=bot_env(stub.base_url), log=out / f"{what}.log")
    try:
        procs.wait_port(proc, port, 20)
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        conv = conversation_ids(max(1, n // 10), "profile")
        warm = plan_events(300, conv, "pw")
        timed = plan_events(n, conv, "pt")
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            aiohttp.ClientSession() as control_session,
        ):
            control = StubControl(control_session, stub.base_url)
            await control.reset()
            await drive(session, url, sign_all(warm, SECRET), concurrency)
            await control.wait("reply", len(warm), 10)
            signed = sign_all(timed, SECRET)
            await control.reset()
            os.kill(proc.pid, signal.SIGUSR1)
            t0 = time.monotonic()
            await drive(session, url, signed, concurrency)
            got = await control.wait("reply", n, 10)
            elapsed = time.monotonic() - t0
            os.kill(proc.pid, signal.SIGUSR2)
        await _wait_file(done_marker(stem), 60)
        sys.stderr.write(f"{got}/{n} replies in {elapsed:.2f} s under {profiler}\n")
    finally:
        procs.stop(proc)
        procs.stop(stub.proc)
    return stem.with_suffix(".txt")


async def profile_sim(n: int, profiler: str, out: pathlib.Path) -> pathlib.Path:
    """Profile the simulator during the timed sends of its benchmark."""
    from benchmarks.sim_bench import SimConfig, run_sim

    stem = out / f"sim-{profiler}"
    done_marker(stem).unlink(missing_ok=True)
    result = await run_sim(SimConfig(n=n), out, profile=(profiler, stem))
    sys.stderr.write(
        f"{result['accepted']}/{n} sends, {result['sends_per_s']:.0f} sends/s under {profiler}\n"
    )
    return stem.with_suffix(".txt")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.profile_load``."""
    parser = argparse.ArgumentParser(description="profile imbot under load")
    parser.add_argument("--what", choices=("bot", "floor", "sim"), default="bot")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", "-c", type=int, default=64)
    parser.add_argument("--profiler", choices=PROFILERS, default="pyinstrument")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--target", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--api-base", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.target:
        stem = out / f"{args.what}-{args.profiler}"
        _target(args.what, args.profiler, stem, args.port, args.api_base)
        return 0
    if args.what in ("bot", "floor"):
        report = asyncio.run(
            profile_contender(args.what, args.n, args.concurrency, args.profiler, out)
        )
    else:
        report = asyncio.run(profile_sim(args.n, args.profiler, out))
    sys.stdout.write(report.read_text())
    sys.stderr.write(f"report: {report}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
