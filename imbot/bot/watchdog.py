"""A warning, naming the handler, when something blocks the event loop for too long.

A handler that calls blocking code (``time.sleep``, a synchronous HTTP client, heavy CPU)
stalls every conversation and the webhook server with it, silently. The watchdog is a
daemon thread beside the loop: the loop bumps a heartbeat a few times a second; when the
heartbeat is older than the threshold, the thread looks at the loop thread's stack, finds
the innermost frame of a registered handler (or middleware, filter, hook) and logs once
per stall where the loop is stuck.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from types import CodeType, FrameType

import anyio

from imbot.log import get_logger

__all__ = ["LoopWatchdog"]

_log = get_logger("imbot")


def _code_of(func: object) -> CodeType | None:
    target = getattr(func, "__func__", func)  # bound methods
    code = getattr(target, "__code__", None)
    if code is None:
        code = getattr(getattr(target, "__call__", None), "__code__", None)  # noqa: B004
    return code if isinstance(code, CodeType) else None


class LoopWatchdog:
    """Watches the event loop for stalls longer than ``threshold`` seconds.

    Args:
        functions: the bot's handlers (and other user callables) to name in the warning.
        threshold: seconds the loop may go without turning before the warning.
    """

    __slots__ = ("_beat", "_codes", "_loop_thread", "_stop", "_threshold")

    def __init__(self, functions: Iterable[object], *, threshold: float = 1.0) -> None:
        self._codes = {code: func for func in functions if (code := _code_of(func)) is not None}
        self._threshold = threshold
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()

    async def run(self) -> None:
        """Keep the heartbeat going and the watching thread alive until cancelled."""
        self._loop_thread = threading.get_ident()
        thread = threading.Thread(target=self._watch, name="imbot-loop-watchdog", daemon=True)
        thread.start()
        interval = min(0.25, self._threshold / 4)
        try:
            while True:
                self._beat = time.monotonic()
                await anyio.sleep(interval)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        warned_for = 0.0
        while not self._stop.wait(self._threshold / 4):
            beat = self._beat
            stalled = time.monotonic() - beat
            if stalled < self._threshold or beat == warned_for:
                continue
            warned_for = beat  # once per stall
            handler, where = self._culprit()
            _log.warning(
                "the event loop is blocked: every conversation waits; use `await` or "
                "anyio.to_thread.run_sync for blocking work",
                blocked_for=round(stalled, 1),
                handler=handler,
                where=where,
            )

    def _culprit(self) -> tuple[str | None, str | None]:
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        innermost = frame
        while frame is not None:
            func = self._codes.get(frame.f_code)
            if func is not None:
                name = getattr(func, "__qualname__", None) or frame.f_code.co_qualname
                return str(name), _where(innermost)
            frame = frame.f_back
        return None, _where(innermost)


def _where(frame: FrameType | None) -> str | None:
    if frame is None:
        return None
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
