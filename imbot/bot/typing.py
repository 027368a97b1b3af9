"""The typing bubble: ``async with ctx.typing():`` keeps it up while a block runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

import anyio
import anyio.abc

from imbot.log import get_logger

__all__ = ["Typing"]

_log = get_logger("imbot")


class Typing:
    """Keeps the typing bubble up while a block runs; made by ``ctx.typing()``.

    The bubble shows at once and is refreshed every ``interval`` seconds. A message clears
    it on the phone, so after each send inside the block it is shown again once the sends
    settle (after ``interval / 4`` seconds, at most 1 s); leaving the block stops the
    refreshes. Errors showing the bubble are logged, never raised: it is cosmetic.

    Args:
        show: shows the bubble once (``client.send_typing`` for the conversation).
        interval: seconds between refreshes.
        active: the context's open typing blocks; the innermost is re-armed after a send.
        conversation_id: for logs.
        event_id: for logs.
    """

    __slots__ = (
        "_active",
        "_conversation_id",
        "_event_id",
        "_interval",
        "_settle",
        "_show_once",
        "_tg",
        "_wake",
    )

    def __init__(
        self,
        show: Callable[[], Awaitable[object]],
        interval: float,
        *,
        active: list[Typing],
        conversation_id: str = "",
        event_id: str = "",
    ) -> None:
        if interval <= 0:
            raise ValueError(f"typing interval must be positive, got {interval}")
        self._show_once = show
        self._interval = interval
        self._settle = min(1.0, interval / 4)
        self._active = active
        self._conversation_id = conversation_id
        self._event_id = event_id
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()

    async def __aenter__(self) -> Typing:
        await self._show()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._keep_alive, name="imbot.typing")
        self._active.append(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self in self._active:
            self._active.remove(self)
        tg = self._tg
        self._tg = None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    def rearm(self) -> None:
        """Note that a message was sent: show the bubble again once sends settle."""
        self._wake.set()

    async def _keep_alive(self) -> None:
        while True:
            with anyio.move_on_after(self._interval):
                await self._wake.wait()
            while self._wake.is_set():
                self._wake = anyio.Event()
                with anyio.move_on_after(self._settle):
                    await self._wake.wait()
            await self._show()

    async def _show(self) -> None:
        try:
            await self._show_once()
        except Exception as exc:
            _log.warning(
                "typing indicator failed",
                error=repr(exc),
                conversation_id=self._conversation_id,
                event_id=self._event_id,
            )
