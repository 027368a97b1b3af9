"""Fixtures for the simulator tests: a real simulator on a free loopback port.

The simulator runs on its own event loop in a helper thread (an anyio blocking portal):
its task group then lives in one task from start to stop, which pytest-asyncio fixtures
cannot promise, and the synchronous ``inkbox`` SDK can call it straight from a test.
Store snapshots go through the portal so they run on the simulator's own thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from anyio.from_thread import BlockingPortal, start_blocking_portal
from support.simapi import FAST_RETRIES, Api, Receiver, SimFactory, SimHandle

from imbot.sim import Simulator


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def make_sim(portal: BlockingPortal) -> Iterator[SimFactory]:
    """Start simulators (stopped at teardown); keyword arguments go to ``Simulator``.

    Most tests here connect a phone and send at once, so they ask for the old connect flow
    (``connect_event=True``: the connect text is the human's first message); the tests of
    Inkbox's flow, the simulator's default, pass ``connect_event=False``.
    """
    with ExitStack() as stack:

        def factory(**kwargs: Any) -> SimHandle:
            kwargs.setdefault("connect_event", True)
            kwargs.setdefault("webhook_retry_delays", FAST_RETRIES)
            kwargs.setdefault("webhook_timeout", 2.0)
            sim = stack.enter_context(portal.wrap_async_context_manager(Simulator(**kwargs)))
            return SimHandle(sim, portal)

        yield factory


@pytest.fixture
def sim(make_sim: SimFactory) -> SimHandle:
    return make_sim()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(sim: SimHandle, session: aiohttp.ClientSession) -> Api:
    return Api(session, sim.base_url, sim.admin_key)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rx.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rx
    finally:
        rx.release.set()
        await runner.cleanup()
