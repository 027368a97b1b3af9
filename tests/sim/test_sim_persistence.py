"""Restarting with the same database keeps everything, including pending webhook retries."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import anyio
from anyio.from_thread import BlockingPortal
from support.simapi import PHONE, Api, Receiver, SimHandle, subscribe, wait_until

from imbot.sim import Simulator


def _start(portal: BlockingPortal, db: Path, **kwargs: object) -> tuple[SimHandle, object]:
    kwargs.setdefault("connect_event", True)  # connect, then send at once
    manager = portal.wrap_async_context_manager(Simulator(db=str(db), **kwargs))  # type: ignore[arg-type]
    return SimHandle(manager.__enter__(), portal), manager


async def test_restart_keeps_state_and_resumes_retries(
    portal: BlockingPortal, session: aiohttp.ClientSession, receiver: Receiver, tmp_path: Path
) -> None:
    with anyio.fail_after(20):
        db = tmp_path / "nested" / "sim.sqlite3"
        failing = {"on": True}
        receiver.respond = lambda captured: 500 if failing["on"] else 200
        first, manager = _start(portal, db, webhook_retry_delays=(1.0, 1.0))
        api = Api(session, first.base_url, first.admin_key)
        ident = await api.identity()
        sub = await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        conv = await api.connect(PHONE)
        agent_key = await api.key_for("echo")
        sent = (await api.send(conv, "before restart")).body["message"]
        await api.post(
            "/api/v1/imessage/identities/echo/contact-rules",
            {"action": "block", "match_target": "+15555550999"},
        )
        await receiver.wait_for(1)

        async def failure_logged() -> bool:
            rows = (await api.get("/api/v1/webhooks/deliveries")).body["deliveries"]
            return len(rows) == 1

        await wait_until(failure_logged)
        assert first.pending() >= 1
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)  # type: ignore[attr-defined]
        assert db.exists()

        failing["on"] = False
        second, manager = _start(portal, db, webhook_retry_delays=(1.0, 1.0))
        try:
            assert second.admin_key == first.admin_key
            api = Api(session, second.base_url, second.admin_key)
            identities = (await api.get("/api/v1/identities")).body
            assert [i["id"] for i in identities] == [ident["id"]]
            agent = api.as_key(agent_key)
            assert (await agent.get("/api/whoami")).status == 200
            assert (await api.get(f"/api/v1/imessage/conversations/{conv}")).status == 200
            assert (await api.message(sent["id"]))["content"] == "before restart"
            subs = (await api.get("/api/v1/webhooks/subscriptions")).body["subscriptions"]
            assert [s["id"] for s in subs] == [sub["id"]]
            rules = (await api.get("/api/v1/imessage/identities/echo/contact-rules")).body
            assert [r["match_target"] for r in rules] == ["+15555550999"]
            # The retry left pending by the first run is delivered by the second.
            events = await receiver.wait_for(2)
            assert events[0]["id"] == events[1]["id"]
            assert receiver.requests[-1].headers["X-Inkbox-Signature"].startswith("sha256=")

            async def both_logged() -> list[dict[str, object]] | None:
                rows = (await api.get("/api/v1/webhooks/deliveries")).body["deliveries"]
                return rows if len(rows) == 2 else None

            deliveries = await wait_until(both_logged)
            assert [d["success"] for d in deliveries] == [True, False]
            assert (await api.send(conv, "after restart")).status == 201
        finally:
            await anyio.to_thread.run_sync(manager.__exit__, None, None, None)  # type: ignore[attr-defined]


async def test_explicit_admin_key_replaces_the_stored_one(
    portal: BlockingPortal, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with anyio.fail_after(10):
        db = tmp_path / "sim.sqlite3"
        first, manager = _start(portal, db)
        generated = first.admin_key
        assert generated.startswith("ApiKey_")
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)  # type: ignore[attr-defined]
        second, manager = _start(portal, db, admin_key="ApiKey_mine")
        try:
            assert second.admin_key == "ApiKey_mine"
            api = Api(session, second.base_url, generated)
            assert (await api.get("/api/whoami")).status == 401
            assert (await api.as_key("ApiKey_mine").get("/api/whoami")).status == 200
        finally:
            await anyio.to_thread.run_sync(manager.__exit__, None, None, None)  # type: ignore[attr-defined]


async def test_messages_in_flight_finish_after_restart(
    portal: BlockingPortal, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with anyio.fail_after(20):
        db = tmp_path / "sim.sqlite3"
        first, manager = _start(portal, db, delivery_delay=3600.0)
        api = Api(session, first.base_url, first.admin_key)
        await api.identity()
        conv = await api.connect(PHONE)
        sent = (await api.send(conv, "slow")).body["message"]

        async def is_sent() -> bool:
            return bool((await api.message(sent["id"]))["status"] == "sent")

        await wait_until(is_sent)
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)  # type: ignore[attr-defined]
        second, manager = _start(portal, db)
        try:
            api = Api(session, second.base_url, second.admin_key)

            async def delivered() -> bool:
                return bool((await api.message(sent["id"]))["status"] == "delivered")

            assert await wait_until(delivered)
        finally:
            await anyio.to_thread.run_sync(manager.__exit__, None, None, None)  # type: ignore[attr-defined]
