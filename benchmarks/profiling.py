"""A profiler armed on signals, for child processes: SIGUSR1 starts it, SIGUSR2 writes it.

The parent sends SIGUSR1 right before the timed window and SIGUSR2 right after, so the
report covers only the work being measured. Reports: ``<stem>.txt`` (and ``.html`` for
pyinstrument, ``.pstats`` for cProfile), then an empty ``<stem>.done`` marker.
"""

from __future__ import annotations

import io
import pathlib
import signal
from typing import Any

PROFILERS = ("pyinstrument", "cprofile")


def arm(profiler_name: str, stem: pathlib.Path) -> None:
    """Install the SIGUSR1 / SIGUSR2 handlers in this (main) thread."""
    state: dict[str, Any] = {}

    def start(_sig: int, _frame: Any) -> None:
        if profiler_name == "pyinstrument":
            from pyinstrument import Profiler

            prof: Any = Profiler(interval=0.0005, async_mode="disabled")
            prof.start()
        else:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        state["prof"] = prof

    def stop(_sig: int, _frame: Any) -> None:
        prof = state.pop("prof", None)
        if prof is None:
            return
        if profiler_name == "pyinstrument":
            prof.stop()
            stem.with_suffix(".html").write_text(prof.output_html())
            stem.with_suffix(".txt").write_text(prof.output_text(unicode=False, color=False))
        else:
            import pstats

            prof.disable()
            prof.dump_stats(str(stem.with_suffix(".pstats")))
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf)
            buf.write(by_package(stats) + "\n\n")
            stats.sort_stats("tottime").print_stats(45)
            stats.sort_stats("cumulative").print_stats(60)
            stem.with_suffix(".txt").write_text(buf.getvalue())
        stem.with_suffix(".done").write_text("")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


_PACKAGES = (
    ("imbot/sim/", "imbot.sim"),
    ("imbot/", "imbot"),
    ("benchmarks/", "benchmarks"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("pydantic", "pydantic"),
    ("anyio/", "anyio"),
    ("structlog/", "structlog"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
    ("sqlite3", "sqlite3"),
)


def _package(filename: str, name: str) -> str:
    for marker, package in _PACKAGES:
        if marker in filename:
            return package
    if filename == "~":
        # Built-ins: name them by what they do, e.g. "socket.send", "validate_json".
        if "socket" in name or "select" in name or "epoll" in name:
            return "socket / epoll (C)"
        if "pydantic" in name or "validate" in name:
            return "pydantic"
        if "sqlite3" in name:
            return "sqlite3"
        return "builtins (C)"
    return "other stdlib / libs"


def by_package(stats: Any) -> str:
    """Own time (tottime) summed per package, largest first: where the CPU went."""
    totals: dict[str, float] = {}
    grand = 0.0
    for (filename, _line, name), row in stats.stats.items():
        tottime = row[2]
        grand += tottime
        key = _package(filename, name)
        totals[key] = totals.get(key, 0.0) + tottime
    lines = ["Own time by package (cProfile tottime):"]
    for key, value in sorted(totals.items(), key=lambda kv: -kv[1]):
        share = value / grand * 100 if grand else 0.0
        lines.append(f"  {key:24s} {value * 1000:9.1f} ms  {share:5.1f} %")
    lines.append(f"  {'total':24s} {grand * 1000:9.1f} ms")
    return "\n".join(lines)


def done_marker(stem: pathlib.Path) -> pathlib.Path:
    """The file that appears once the report is written."""
    return stem.with_suffix(".done")
