"""The process edge of ``bot.run()``: logging, signals, open files, and the garbage collector.

Effects on the whole process happen here and nowhere else in the bot: structlog is
configured, the open-files limit is raised to its hard limit, SIGINT/SIGTERM are handled
(the first stops gracefully, a second cancels the handlers still draining), and the
collector is tuned once the bot listens.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from imbot.config import resolve_gc_tuning
from imbot.errors import single_exception
from imbot.log import configure_logging, get_logger

if TYPE_CHECKING:
    from imbot.bot.bot import Bot

__all__ = ["GC_THRESHOLD", "raise_open_files_limit", "run", "tune_gc"]

GC_THRESHOLD = (10_000, 20, 20)
"""The collector thresholds ``bot.run()`` sets once the bot is listening (default 700, 10, 10)."""

_log = get_logger("imbot")

_MACOS_OPEN_MAX = 10_240  # macOS refuses a soft limit above this (and RLIM_INFINITY)


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise the soft open-files limit to the hard limit; return (before, after).

    Every connection the webhook server holds is a file descriptor, and the usual soft limit
    (1,024) is far below what the system allows a process (the hard limit): with it, a
    thousand idle connections make the bot unreachable. The server keeps its connections
    below whatever limit is in force (``imbot.bot.limits.connection_cap``). ``run`` logs
    the result once the bot listens, so that a bot failing to start prints only why.

    Returns:
        The soft limit before and after (equal when it could not be raised), or ``None``
        where there is no such limit to read (Windows) or it is unlimited.
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft == infinite:
        return None
    wanted = [hard] if hard != infinite else []
    wanted.append(_MACOS_OPEN_MAX if hard == infinite else min(hard, _MACOS_OPEN_MAX))
    for target in wanted:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            continue
        return soft, target
    return soft, soft


def tune_gc() -> tuple[int, int, int]:
    """Tune the collector for a serving bot; return the thresholds to restore.

    Almost nothing a bot allocates per event is cyclic garbage, yet each event in flight
    keeps a few dozen young container objects alive (the parsed event, its context, the
    coroutines and the HTTP objects), so with the default threshold of 700 the collector
    runs every dozen events and re-traverses the same live objects: measured at 30–50 µs
    per event, up to a quarter of the bot's CPU. Collecting once and freezing what start-up
    built (modules, pydantic schemas) takes those out of every later pass; a gen-0
    threshold of 10,000 makes the passes rare. Cycles are still collected.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    return previous


def run(
    bot: Bot,
    host: str,
    port: int,
    path: str,
    *,
    log_level: str | None = None,
    gc_tuning: bool | None = None,
    reuse_port: bool = False,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve ``bot`` until SIGINT/SIGTERM; what ``bot.run()`` does (see its docstring).

    Args:
        bot: the bot.
        host: the interface to listen on.
        port: the port.
        path: the webhook route.
        log_level: the log level; ``IMBOT_LOG_LEVEL`` or ``INFO`` by default.
        gc_tuning: tune the garbage collector; by default unless ``IMBOT_GC_TUNING=0``.
        reuse_port: share the port with sibling workers (``SO_REUSEPORT``); see
            ``imbot.cli.workers``.
        on_listening: called with the bound port once the bot listens (a worker tells
            its supervisor it is up).
    """
    configure_logging(log_level)
    files = raise_open_files_limit()
    tune = resolve_gc_tuning(gc_tuning)
    previous: list[tuple[int, int, int]] = []

    def listening(bound: int) -> None:
        if files is not None:
            _log.info("open files limit", limit=files[1], previous=files[0])
        if tune:
            previous.append(tune_gc())
        if on_listening is not None:
            on_listening(bound)

    try:
        anyio.run(_serve_until_signal, bot, host, port, path, listening, reuse_port)
    finally:
        if previous:
            gc.unfreeze()
            gc.set_threshold(*previous[0])


async def _serve_until_signal(  # noqa: PLR0917 - anyio.run passes arguments by position
    bot: Bot,
    host: str,
    port: int,
    path: str,
    listening: Callable[[int], None] | None,
    reuse_port: bool,
) -> None:
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, bot, tg.cancel_scope, name="imbot.signals")

            async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
                await bot.serve(host, port, path, reuse_port=reuse_port, task_status=task_status)
                tg.cancel_scope.cancel()  # served and stopped: stop watching signals

            bound: int = await tg.start(serve)
            if listening is not None:
                listening(bound)  # start-up is over: everything built so far stays
    except BaseExceptionGroup as group:
        raise (single_exception(group) or group) from None


async def _watch_signals(bot: Bot, everything: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if (bot.running or bot.draining) and bot.stop(reason=name):
                continue  # the first signal stops gracefully, a second cancels the drain
            # Still starting (or between stop and drain): nothing to wait for.
            _log.warning("stopping now", signal=name)
            everything.cancel()
