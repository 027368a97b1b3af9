"""A local Inkbox-compatible iMessage server: the simulator.

Start it in-process as an async context manager:

```python
from imbot.sim import Simulator

async with Simulator() as sim:  # free loopback port, in-memory store
    print(sim.base_url, sim.admin_key, sim.triage_number)
```

or from the shell with ``imbot sim``. See ``docs/simulator.md``.
"""

from __future__ import annotations

import socket
import sys
from types import TracebackType
from typing import Any

import anyio
from aiohttp import web
from anyio.abc import TaskGroup, TaskStatus

from imbot.net import bind_listener
from imbot.sim.app import build_app
from imbot.sim.chaos import Chaos
from imbot.sim.chaos_plan import ChaosControl
from imbot.sim.config import DEFAULT_TRIAGE_NUMBER, SimConfig
from imbot.sim.core import Core
from imbot.sim.delivery import Delivery
from imbot.sim.guard import allowed_name
from imbot.sim.lifecycle import Lifecycle
from imbot.sim.store import Store
from imbot.sim.timeline import Timeline
from imbot.sim.validation import E164

__all__ = ["Chaos", "ChaosControl", "SimConfig", "Simulator"]

# Long enough for in-flight API answers to finish, short enough that Ctrl-C feels instant.
_SHUTDOWN_TIMEOUT = 2.0


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"  # IPv6 listeners are v6-only (imbot.net), so not 127.0.0.1
    return f"[{host}]" if ":" in host else host


class Simulator:
    """The simulator as an async context manager (or ``await tg.start(sim.serve)``).

    Example:
        >>> async def demo() -> None:
        ...     async with Simulator(delivery_delay=0.0) as sim:
        ...         print(sim.base_url)  # doctest: +SKIP

    Args:
        db: SQLite file (its folder is created), or ``":memory:"``.
        host: interface to bind; loopback by default.
        port: TCP port; ``0`` picks a free one.
        admin_key: the admin API key; ``None`` reuses the stored key or mints one.
        triage_number: the router number (E.164).
        delivery_delay: seconds between ``sent`` and ``delivered``.
        send_cap: outbound messages per identity per rolling window; ``None`` for no cap.
        send_cap_window: the length of that window in seconds (Inkbox: 24 hours); a short
            one lets a test see the ``429``'s ``Retry-After`` run out.
        connect_event: the old connect flow: deliver the human's ``connect @handle`` text
            to the agent as the conversation's first ``imessage.received``, so the agent
            may write at once. ``False`` (the default) is Inkbox's flow: the agent hears
            nothing until the human's first message in the new thread.
        webhook_retry_delays: seconds before each retry of a failed webhook delivery.
        webhook_timeout: seconds one delivery attempt may take.
        webhook_workers: deliveries in flight at once.
        unreachable: phone numbers whose deliveries fail.
        sms_numbers: phone numbers without iMessage: sends to them go out as SMS
            (``was_downgraded: true``, ``service: "sms"``), and ``sent`` is final.
        declining_numbers: phone numbers whose deliveries end ``declined``.
        typing_ttl: seconds a typing bubble stays up without a new ``/typing`` call.
        allowed_hosts: host names to serve besides loopback ones and ``host`` (``"*"`` for
            any), for a simulator reached by another name (see ``docs/simulator.md``).
        chaos: chaos mode, on from the start: a ``Chaos`` or a spec such as
            ``"bad-day,seed=7"`` (see ``Chaos.parse``); ``sim.chaos`` switches it at run time.

    Raises:
        ValueError: for an invalid setting.
    """

    def __init__(
        self,
        *,
        db: str = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        admin_key: str | None = None,
        triage_number: str = DEFAULT_TRIAGE_NUMBER,
        delivery_delay: float = 0.0,
        send_cap: int | None = 100,
        send_cap_window: float = 86400.0,
        connect_event: bool = False,
        webhook_retry_delays: tuple[float, ...] = (5, 30, 120, 600, 1800),
        webhook_timeout: float = 10.0,
        webhook_workers: int = 16,
        unreachable: tuple[str, ...] | list[str] = (),
        sms_numbers: tuple[str, ...] | list[str] = (),
        declining_numbers: tuple[str, ...] | list[str] = (),
        typing_ttl: float = 60.0,
        allowed_hosts: tuple[str, ...] | list[str] = (),
        chaos: Chaos | str | None = None,
    ) -> None:
        if not E164.match(triage_number):
            raise ValueError(
                f"triage_number must be E.164 (like +15550100000), not {triage_number!r}"
            )
        for label, numbers in (
            ("unreachable", unreachable),
            ("sms_numbers", sms_numbers),
            ("declining_numbers", declining_numbers),
        ):
            for number in numbers:
                if not E164.match(number):
                    raise ValueError(f"{label} numbers must be E.164, not {number!r}")
        if send_cap is not None and send_cap < 1:
            raise ValueError("send_cap must be at least 1, or None for no cap")
        if send_cap_window <= 0:
            raise ValueError("send_cap_window must be positive")
        if (
            delivery_delay < 0
            or webhook_timeout <= 0
            or typing_ttl <= 0
            or any(d < 0 for d in webhook_retry_delays)
        ):
            raise ValueError("delays and timeouts must not be negative")
        if webhook_workers < 1:
            raise ValueError("webhook_workers must be at least 1")
        if admin_key is not None and not admin_key.strip():
            raise ValueError("admin_key must not be blank")
        for name in allowed_hosts:
            if allowed_name(name) is None:
                raise ValueError(
                    f"allowed_hosts takes host names like sim.example.test, not {name!r}"
                )
        self.config = SimConfig(
            db=db,
            host=host,
            port=port,
            admin_key=admin_key,
            triage_number=triage_number,
            delivery_delay=delivery_delay,
            send_cap=send_cap,
            send_cap_window=send_cap_window,
            connect_event=connect_event,
            webhook_retry_delays=tuple(webhook_retry_delays),
            webhook_timeout=webhook_timeout,
            webhook_workers=webhook_workers,
            unreachable=tuple(unreachable),
            sms_numbers=tuple(sms_numbers),
            declining_numbers=tuple(declining_numbers),
            typing_ttl=typing_ttl,
            allowed_hosts=tuple(allowed_hosts),
            chaos=Chaos.parse(chaos) if isinstance(chaos, str) else chaos,
        )
        self._core: Core | None = None
        self._tg: TaskGroup | None = None

    def _running(self) -> Core:
        if self._core is None:
            raise RuntimeError("the simulator is not running; use `async with Simulator() as sim`")
        return self._core

    @property
    def base_url(self) -> str:
        """The origin, like ``http://127.0.0.1:54321`` (the API is under ``/api/v1``)."""
        return self._running().base_url

    @property
    def admin_key(self) -> str:
        """The admin API key (``ApiKey_...``)."""
        return self._running().admin_key

    @property
    def triage_number(self) -> str:
        """The router number humans text ``connect @handle`` to."""
        return self.config.triage_number

    @property
    def chat_url(self) -> str:
        """The chat page's URL."""
        return self.base_url + "/"

    @property
    def chaos(self) -> ChaosControl:
        """Chaos mode while running: switch it, take the API down, read what it did.

        Example:
            >>> sim.chaos.enable(Chaos.parse("bad-day,seed=7"))
            >>> sim.chaos.take_down(5)  # no API answers for 5 s
            >>> sim.chaos.stats  # Counter({'api_calls': 212, '429': 7, ...})

        Raises:
            RuntimeError: the simulator is not running.
        """
        return self._running().chaos

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every stored row, table by table (tests use it to prove nothing changed)."""
        core = self._running()
        core.delivery.flush()
        return core.store.snapshot()

    def pending(self) -> int:
        """Outbound messages still on their way plus webhook deliveries still waiting."""
        core = self._running()
        return core.lifecycle.pending() + core.delivery.pending()

    def busy(self) -> bool:
        """Whether anything is still in flight: a webhook or an outbound message.

        Busy means a webhook delivery is waiting (or being retried), or an outbound message
        is not yet ``delivered`` or failed. Typing bubbles do not count: one stays up for
        ``typing_ttl`` seconds after a ``/typing`` call, yet nothing is left to happen. So
        ``not sim.busy()`` means quiet; the test kit polls it to know the bot's answers
        have landed.

        Example:
            >>> while sim.busy():
            ...     await anyio.sleep(0.01)

        Raises:
            RuntimeError: the simulator is not running.
        """
        core = self._running()
        return core.delivery.pending() > 0 or core.lifecycle.pending() > 0

    def _prepare(self) -> tuple[Core, socket.socket]:
        """Open the store and bind the socket; errors surface here, unwrapped."""
        config = self.config
        store = Store(config.db)
        try:
            core = Core(config, store)
            core.delivery = Delivery(core)
            core.lifecycle = Lifecycle(core)
            core.timeline = Timeline(core)
            for number in config.unreachable:
                store.run(
                    "INSERT INTO phones (number, unreachable, error_code, created_at) "
                    "VALUES (?, 1, 'unreachable', ?) ON CONFLICT(number) DO UPDATE SET "
                    "unreachable = 1, error_code = COALESCE(error_code, 'unreachable')",
                    (number, core.clock.now()),
                )
            for delivery, numbers in (
                ("sms", config.sms_numbers),
                ("declined", config.declining_numbers),
            ):
                for number in numbers:
                    store.run(
                        "INSERT INTO phones (number, created_at, delivery) VALUES (?, ?, ?) "
                        "ON CONFLICT(number) DO UPDATE SET delivery = excluded.delivery",
                        (number, core.clock.now(), delivery),
                    )
            sock = bind_listener(config.host, config.port)
        except BaseException:
            store.close()
            raise
        return core, sock

    async def serve(self, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; report the base URL through ``task_status`` once listening.

        Raises:
            OSError: when the port cannot be bound (``errno.EADDRINUSE`` if taken).
            SetupError: when the database holds another schema version.
        """
        core, sock = self._prepare()
        await self._run(core, sock, task_status=task_status)

    async def _run(
        self,
        core: Core,
        sock: socket.socket,
        *,
        task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        runner = web.AppRunner(
            build_app(core),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
            core.base_url = f"http://{_url_host(self.config.host)}:{sock.getsockname()[1]}"
            self._core = core
            async with anyio.create_task_group() as tg:
                core.delivery.resume()
                core.lifecycle.resume()
                tg.start_soon(core.delivery.run)
                tg.start_soon(core.lifecycle.run)
                task_status.started(core.base_url)
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                # End the event streams first so the server does not wait on them.
                core.hub.close()
                await runner.cleanup()
            sock.close()
            core.delivery.close()
            self._core = None
            core.store.close()

    async def __aenter__(self) -> Simulator:
        core, sock = self._prepare()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self._run, core, sock)
        except BaseException:
            tg.cancel_scope.cancel()
            await tg.__aexit__(*sys.exc_info())
            raise
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the simulator; an exception from the block propagates unchanged."""
        tg, self._tg = self._tg, None
        if tg is None:
            return
        tg.cancel_scope.cancel()
        try:
            # None, not the block's exception: that one is the caller's, and passing it in
            # would come back wrapped in the task group's ExceptionGroup.
            await tg.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def stop(self) -> None:
        """Stop a simulator entered with ``async with`` before the block ends."""
        await self.__aexit__(None, None, None)
