"""Webhook subscriptions, signed delivery, retries, ordering and the delivery log."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import anyio
from support.simapi import (
    PHONE,
    PHONE_2,
    Api,
    Captured,
    Receiver,
    SimFactory,
    SimHandle,
    subscribe,
    wait_until,
)

from imbot.webhooks import verify

SUBS = "/api/v1/webhooks/subscriptions"


async def _signing_key(api: Api, handle: str = "echo") -> str:
    r = await api.post(f"/api/v1/identities/{handle}/signing-key", {})
    assert r.status == 200
    return str(r.body["signing_key"])


async def test_subscription_crud(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        created = await subscribe(api, ident["id"], "https://example.com/a", ["imessage.received"])
        assert created["signing_key"].startswith("whsec_")
        assert created["agent_identity_id"] == ident["id"] and created["status"] == "active"
        second = await subscribe(
            api, ident["id"], "https://example.com/b", ["imessage.sent"], auth_token="tok"
        )
        assert second["signing_key"] is None
        assert second["has_auth_token"] is True and second["auth_token"] == "tok"
        listed = (await api.get(SUBS)).body
        assert [s["id"] for s in listed["subscriptions"]] == [created["id"], second["id"]]
        filtered = (await api.get(SUBS, params={"event_type": "imessage.sent"})).body
        assert [s["id"] for s in filtered["subscriptions"]] == [second["id"]]
        before = sim.snapshot()
        overlap = await api.post(
            SUBS,
            {
                "url": "https://example.com/a",
                "event_types": ["imessage.received", "imessage.sent"],
                "agent_identity_id": ident["id"],
            },
        )
        assert overlap.status == 409
        for bad in (
            {"url": "ftp://x", "event_types": ["imessage.sent"], "agent_identity_id": ident["id"]},
            {"url": "https://x", "event_types": [], "agent_identity_id": ident["id"]},
            {
                "url": "https://x",
                "event_types": ["imessage.sent", "imessage.sent"],
                "agent_identity_id": ident["id"],
            },
            {
                "url": "https://x",
                "event_types": ["phone.incoming_call"],
                "agent_identity_id": ident["id"],
            },
            {"url": "https://x", "event_types": ["imessage.sent"]},
        ):
            assert (await api.post(SUBS, bad)).status == 422, bad
        r = await api.get(
            SUBS, params={"agent_identity_id": ident["id"], "mailbox_id": ident["id"]}
        )
        assert r.status == 422
        assert sim.snapshot() == before
        r = await api.patch(
            f"{SUBS}/{second['id']}", {"auth_token": None, "event_types": ["imessage.delivered"]}
        )
        assert r.status == 200
        assert r.body["has_auth_token"] is False and r.body["event_types"] == ["imessage.delivered"]
        other = await api.identity("other")
        agent = api.as_key(await api.key_for("other"))
        assert (await agent.get(f"{SUBS}/{created['id']}")).status == 404
        assert (await agent.get(SUBS)).body == {"subscriptions": []}
        r = await agent.post(
            SUBS,
            {
                "url": "https://x",
                "event_types": ["imessage.sent"],
                "agent_identity_id": ident["id"],
            },
        )
        assert r.status == 403
        assert other["id"] != ident["id"]
        assert (await api.delete(f"{SUBS}/{created['id']}")).status == 204
        assert (await api.get(f"{SUBS}/{created['id']}")).status == 404
        catalog = (await api.get("/api/v1/webhooks/catalog")).body
        assert catalog["supports_identity_subscriptions"] is True


async def test_signed_delivery_headers_and_envelope(api: Api, receiver: Receiver) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        sub = await subscribe(api, ident["id"], receiver.url, auth_token="s3cret")
        secret = sub["signing_key"]
        conv = await api.connect(PHONE)
        await api.send(conv, "hello")
        events = await receiver.wait_for(3)
        assert [e["event_type"] for e in events] == [
            "imessage.received",
            "imessage.sent",
            "imessage.delivered",
        ]
        for captured in receiver.requests:
            verify(captured.body, captured.headers, secret)
            assert captured.headers["Content-Type"] == "application/json"
            assert captured.headers["Authorization"] == "Bearer s3cret"
            assert abs(int(captured.headers["X-Inkbox-Timestamp"]) - time.time()) < 60
            envelope = captured.json
            assert envelope["id"].startswith("evt_")
            assert envelope["data"]["contacts"] == [] and envelope["data"]["agent_identities"] == []
            assert envelope["data"]["reaction"] is None
            assert "is_blocked" not in envelope["data"]["message"]
            assert envelope["timestamp"].endswith("Z")
        assert len({c.headers["X-Inkbox-Request-ID"] for c in receiver.requests}) == 3
        sent, delivered = events[1]["data"]["message"], events[2]["data"]["message"]
        assert sent["status"] == "sent" and sent["recipients"][0]["sent_at"]
        assert delivered["status"] == "delivered" and delivered["recipients"][0]["delivered_at"]
        # A rotated key signs the next deliveries.
        new_secret = await _signing_key(api)
        await api.text(PHONE, "after rotation")
        await receiver.wait_for(4)
        verify(receiver.requests[-1].body, receiver.requests[-1].headers, new_secret)


async def test_retries_keep_the_event_id(api: Api, receiver: Receiver) -> None:
    with anyio.fail_after(10):
        answers = iter([500, 500, 200])
        receiver.respond = lambda captured: next(answers, 200)
        ident = await api.identity()
        sub = await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        events = await receiver.wait_for(3)
        assert len({e["id"] for e in events}) == 1
        assert len({c.headers["X-Inkbox-Request-ID"] for c in receiver.requests}) == 3
        for captured in receiver.requests:
            verify(captured.body, captured.headers, sub["signing_key"])

        async def logged() -> list[dict[str, Any]] | None:
            rows = (await api.get("/api/v1/webhooks/deliveries")).body["deliveries"]
            return rows if len(rows) == 3 else None

        rows = await wait_until(logged)
        assert [r["response_status"] for r in rows] == [200, 500, 500]
        assert [r["success"] for r in rows] == [True, False, False]
        assert {r["event_id"] for r in rows} == {events[0]["id"]}
        # The raw body as delivered (a string), the same on every attempt.
        assert {r["request_payload"] for r in rows} == {receiver.requests[0].body.decode()}
        assert json.loads(rows[0]["request_payload"])["id"] == events[0]["id"]
        failed = (await api.get("/api/v1/webhooks/deliveries", params={"success": "false"})).body
        assert len(failed["deliveries"]) == 2
        replay = await api.post(f"/api/v1/webhooks/deliveries/{rows[0]['id']}/replay")
        assert replay.status == 200 and replay.body["is_replay"] is True
        assert receiver.requests[-1].json["id"] == events[0]["id"]


async def test_gives_up_after_bounded_attempts(
    make_sim: SimFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(webhook_retry_delays=(0.01, 0.01))
        api = Api(session, sim.base_url, sim.admin_key)
        receiver.respond = lambda captured: 503
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        await receiver.wait_for(3)

        async def drained() -> bool:
            return sim.pending() == 0

        await wait_until(drained)
        assert len(receiver.requests) == 3

        async def logged() -> list[dict[str, Any]] | None:
            rows = (await api.get("/api/v1/webhooks/deliveries")).body["deliveries"]
            return rows if len(rows) == 3 else None

        rows = await wait_until(logged)
        assert [r["attempt"] for r in rows] == [3, 2, 1]


async def test_refused_connection_is_retried(
    make_sim: SimFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(webhook_retry_delays=(0.3,))
        api = Api(session, sim.base_url, sim.admin_key)
        ident = await api.identity()
        sub = await subscribe(api, ident["id"], "http://127.0.0.1:9/nothing", ["imessage.received"])
        await api.connect(PHONE)
        await api.patch(f"{SUBS}/{sub['id']}", {"url": receiver.url})
        events = await receiver.wait_for(1)
        assert events[0]["data"]["message"]["content"] == "connect @echo"
        rows = (await api.get("/api/v1/webhooks/deliveries")).body["deliveries"]
        assert rows[-1]["success"] is False and rows[-1]["error_detail"]
        assert rows[-1]["response_status"] is None


async def test_order_per_conversation(
    make_sim: SimFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(webhook_retry_delays=(0.4,))
        api = Api(session, sim.base_url, sim.admin_key)
        failed_once: set[str] = set()

        def respond(captured: Captured) -> int:
            message = captured.json["data"]["message"]
            if (
                message["remote_number"] == PHONE
                and message["content"] == "a1"
                and "a1" not in failed_once
            ):
                failed_once.add("a1")
                return 500
            return 200

        receiver.respond = respond
        ident = await api.identity()
        await api.connect(PHONE)
        await api.connect(PHONE_2)
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.text(PHONE, "a1")
        await api.text(PHONE, "a2")
        await api.text(PHONE_2, "b1")
        await api.text(PHONE_2, "b2")
        await receiver.wait_for(5)
        contents = [c.json["data"]["message"]["content"] for c in receiver.requests]
        assert contents[0] == "a1"  # the failed first attempt
        assert contents.count("a1") == 2 and contents.count("a2") == 1
        # B flowed while A waited for its retry; A kept its order.
        assert contents.index("b1") < contents.index("b2") < contents.index("a1", 1)
        assert contents.index("a1", 1) < contents.index("a2")


async def test_hanging_receiver_does_not_slow_the_api(
    make_sim: SimFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with anyio.fail_after(20):
        sim = make_sim(webhook_timeout=5.0)
        api = Api(session, sim.base_url, sim.admin_key)
        receiver.respond = lambda captured: "hang"
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url)
        conv = await api.connect(PHONE)
        await receiver.wait_for(1)
        started = time.perf_counter()
        for i in range(20):
            r = await api.send(conv, f"m{i}")
            assert r.status == 201
            assert r.elapsed < 1.0
        assert (await api.get("/api/v1/imessage/messages")).status == 200
        assert time.perf_counter() - started < 3.0
        receiver.release.set()


async def test_timeout_is_retried(
    make_sim: SimFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(webhook_timeout=0.3, webhook_retry_delays=(0.05,))
        api = Api(session, sim.base_url, sim.admin_key)
        answers = iter(["hang"])
        receiver.respond = lambda captured: next(answers, 200)
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        events = await receiver.wait_for(2)
        assert events[0]["id"] == events[1]["id"]

        async def logged() -> list[dict[str, Any]] | None:
            rows = (await api.get("/api/v1/webhooks/deliveries")).body["deliveries"]
            return rows if len(rows) == 2 else None

        rows = await wait_until(logged)
        assert rows[1]["success"] is False and "timed out" in rows[1]["error_detail"]
        assert rows[0]["success"] is True
        receiver.release.set()
