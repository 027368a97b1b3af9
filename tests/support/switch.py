"""A TCP forwarder that can be switched off: the Inkbox API going down, for real.

The bot's client talks to the simulator through it. ``down()`` closes the listening socket
and every forwarded connection, so new requests get "connection refused" and requests in
flight are cut, as when the API's host goes away; ``up()`` listens again on the same port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.abc import SocketStream


async def _pump(source: SocketStream, sink: SocketStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        await sink.aclose()


class ApiSwitch:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target`` while it is up.

    Attributes:
        port: the port to point the bot's ``base_url`` at.
        target: the simulator's port.
    """

    def __init__(self, tg: anyio.abc.TaskGroup, target: int) -> None:
        self._tg = tg
        self.target = target
        self.port = 0
        self._scope: anyio.CancelScope | None = None

    @property
    def base_url(self) -> str:
        """The API origin to give the bot."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        """Whether it forwards now."""
        return self._scope is not None

    async def up(self) -> None:
        """Listen (again, on the same port once one was picked) and forward."""
        if self._scope is not None:
            return
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        await self._tg.start(self._serve, listener)

    async def _serve(
        self,
        listener: anyio.abc.Listener[SocketStream],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            task_status.started()
            async with listener, anyio.create_task_group() as conns:
                await listener.serve(self._forward, task_group=conns)

    async def _forward(self, client: SocketStream) -> None:
        async with client:
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.target)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(_pump, client, upstream)
                tg.start_soon(_pump, upstream, client)

    def down(self) -> None:
        """Stop listening and cut every forwarded connection."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None


@asynccontextmanager
async def api_switch(target: int) -> AsyncIterator[ApiSwitch]:
    """An ``ApiSwitch`` in front of ``127.0.0.1:target``, up, and down when the block ends."""
    async with anyio.create_task_group() as tg:
        switch = ApiSwitch(tg, target)
        await switch.up()
        try:
            yield switch
        finally:
            switch.down()
