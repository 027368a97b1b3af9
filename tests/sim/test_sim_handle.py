"""The ``Simulator`` handle itself: ``busy()`` and how ``async with Simulator()`` ends.

These tests enter the simulator in the test's own task (no portal thread), the way the
test kit and users do.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest
from support.simapi import PHONE, Api, Receiver, subscribe

from imbot.sim import Simulator

LIMIT = 10  # seconds, per test


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def until_quiet(sim: Simulator) -> None:
    with anyio.fail_after(5):
        while sim.busy():
            await anyio.sleep(0.005)


async def connected(api: Api, handle: str = "echo") -> tuple[Api, str]:
    """An identity-scoped API and the conversation of PHONE with ``handle``."""
    await api.identity(handle)
    conversation_id = await api.connect(PHONE, handle)
    return api.as_key(await api.key_for(handle)), conversation_id


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# --------------------------------------------------------------------------- leaving the block


async def test_an_exception_in_the_block_comes_out_unwrapped() -> None:
    with anyio.fail_after(LIMIT), pytest.raises(KeyError, match="mine") as caught:
        async with Simulator() as sim:
            port = int(sim.base_url.rsplit(":", 1)[1])
            raise KeyError("mine")
    assert type(caught.value) is KeyError  # not an ExceptionGroup around it
    assert refused(port)  # and the simulator did stop
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.base_url


async def test_a_failed_assertion_in_the_block_stays_an_assertion_error() -> None:
    with anyio.fail_after(LIMIT), pytest.raises(AssertionError, match="the test's own"):
        async with Simulator():
            raise AssertionError("the test's own")


async def test_stop_inside_the_block_then_a_clean_exit() -> None:
    with anyio.fail_after(LIMIT):
        async with Simulator() as sim:
            port = int(sim.base_url.rsplit(":", 1)[1])
            await sim.stop()
            assert refused(port)
            await sim.stop()  # a second stop is harmless, and so is leaving the block


async def test_cancelling_around_the_block_still_stops_the_simulator() -> None:
    ports: list[int] = []
    with anyio.fail_after(LIMIT):
        with anyio.move_on_after(0.2):
            async with Simulator() as sim:
                ports.append(int(sim.base_url.rsplit(":", 1)[1]))
                await anyio.sleep_forever()
    assert ports and refused(ports[0])


# --------------------------------------------------------------------------- busy()


async def test_busy_while_a_message_is_on_its_way_not_while_typing(
    session: aiohttp.ClientSession,
) -> None:
    with anyio.fail_after(LIMIT):
        async with Simulator(delivery_delay=0.5, connect_event=True) as sim:
            admin = Api(session, sim.base_url, sim.admin_key)
            agent, conversation_id = await connected(admin)
            await until_quiet(sim)  # the router's answer to `connect` has landed

            typing = await agent.post(
                "/api/v1/imessage/typing", {"conversation_id": conversation_id}
            )
            assert typing.status < 300, typing.body
            timeline = await admin.get(f"/sim/v1/phones/{PHONE}/timeline")
            assert any(t["typing"] for t in timeline.body["threads"])  # the bubble is up...
            assert not sim.busy()  # ...but nothing is left to happen

            sent = await agent.send(conversation_id, "on its way")
            assert sent.status == 201, sent.body
            assert sim.busy()  # queued or sent, not delivered before delivery_delay
            await until_quiet(sim)
            assert (await agent.message(sent.body["message"]["id"]))["status"] == "delivered"


async def test_busy_while_a_webhook_delivery_is_in_flight(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.respond = lambda captured: "hang"
    with anyio.fail_after(LIMIT):
        async with Simulator() as sim:
            admin = Api(session, sim.base_url, sim.admin_key)
            identity = await admin.identity("echo")
            await admin.connect(PHONE, "echo")
            await until_quiet(sim)
            await subscribe(admin, identity["id"], receiver.url, ["imessage.received"])
            texted = await admin.text(PHONE, "hello", to="echo")
            assert texted.status == 201, texted.body
            await receiver.wait_for(1, "imessage.received")
            assert sim.busy()  # the receiver holds the delivery open
            receiver.release.set()
            await until_quiet(sim)
            assert not sim.busy()


async def test_busy_needs_a_running_simulator() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError, match="not running"):
        sim.busy()
