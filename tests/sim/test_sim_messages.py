"""Sends, lists and the send rules of ``/api/v1/imessage/messages``."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
from support.simapi import PHONE, PHONE_2, Api, SimFactory, SimHandle, wait_until

MSGS = "/api/v1/imessage/messages"


async def test_send_walks_queued_sent_delivered(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        r = await api.send(conv, "Friday 3pm works", send_style="confetti")
        assert r.status == 201
        message = r.body["message"]
        assert message["status"] == "queued"
        assert message["direction"] == "outbound"
        assert message["content"] == "Friday 3pm works"
        assert message["send_style"] == "confetti"
        assert message["recipients"][0]["delivery_status"] == "queued"
        assert message["is_read"] is False and message["is_blocked"] is False

        async def delivered() -> dict[str, Any] | None:
            m = await api.message(message["id"])
            return m if m["status"] == "delivered" else None

        final = await wait_until(delivered)
        recipient = final["recipients"][0]
        assert recipient["delivery_status"] == "delivered"
        assert recipient["sent_at"] and recipient["delivered_at"]
        assert final["was_downgraded"] is False


async def test_send_by_to_needs_agent_identity_for_admin(api: Api) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        await api.connect(PHONE)
        r = await api.post(MSGS, {"to": PHONE, "text": "hello"})
        assert r.status == 422
        assert r.body["detail"][0]["loc"] == ["query", "agent_identity_id"]
        r = await api.post(
            MSGS, {"to": PHONE, "text": "hello"}, params={"agent_identity_id": ident["id"]}
        )
        assert r.status == 201
        assert r.body["message"]["remote_number"] == PHONE


async def test_identity_key_sends_by_to_and_ignores_query(api: Api) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        other = await api.identity("other")
        await api.connect(PHONE)
        key = await api.key_for("echo")
        agent = api.as_key(key)
        r = await agent.post(
            MSGS, {"to": PHONE, "text": "x"}, params={"agent_identity_id": other["id"]}
        )
        assert r.status == 201, r.body
        assert ident["id"] != other["id"]


async def test_no_cold_outreach_404(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        before = sim.snapshot()
        r = await api.post(
            MSGS, {"to": PHONE_2, "text": "hi"}, params={"agent_identity_id": ident["id"]}
        )
        assert r.status == 404
        detail = r.body["detail"]
        assert detail["error"] == "no_assignment"
        assert detail["connect_command"] == "connect @echo"
        assert detail["router_number"] == sim.triage_number
        assert "message" in detail
        assert sim.snapshot() == before


async def test_released_conversation_409(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        assignment = (await api.get("/api/v1/imessage/assignments")).body[0]
        r = await api.delete(f"/api/v1/imessage/assignments/{assignment['id']}")
        assert r.status == 204
        before = sim.snapshot()
        r = await api.send(conv)
        assert r.status == 409
        assert r.body["detail"]["error"] == "conversation_released"
        assert sim.snapshot() == before


async def test_connected_but_silent_409(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(connect_event=False)
        api = Api(session, sim.base_url, sim.admin_key)
        await api.identity()
        conv = await api.connect(PHONE)
        convo = await api.get(f"/api/v1/imessage/conversations/{conv}")
        assert convo.status == 200
        summary = (await api.get("/api/v1/imessage/conversations")).body[0]
        assert summary["total_count"] == 0
        r = await api.send(conv)
        assert r.status == 409
        assert r.body["detail"]["error"] == "recipient_has_not_messaged"
        await api.text(PHONE, "hello there")
        r = await api.send(conv)
        assert r.status == 201


async def test_identity_not_enabled_400(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        r = await api.patch("/api/v1/identities/echo", {"imessage_enabled": False})
        assert r.status == 200 and r.body["imessage_enabled"] is False
        before = sim.snapshot()
        r = await api.send(conv)
        assert r.status == 400
        assert isinstance(r.body["detail"], str)
        assert sim.snapshot() == before


async def test_other_identitys_conversation_is_404(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("other")
        conv = await api.connect(PHONE)
        other = api.as_key(await api.key_for("other"))
        r = await other.send(conv)
        assert r.status == 404
        r = await other.get(f"/api/v1/imessage/conversations/{conv}")
        assert r.status == 404
        sent = await api.send(conv)
        r = await other.get(f"{MSGS}/{sent.body['message']['id']}")
        assert r.status == 404
        assert (await other.get(MSGS)).body == []


async def test_validation_errors_change_nothing(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        conv = await api.connect(PHONE)
        before = sim.snapshot()
        q = {"agent_identity_id": ident["id"]}
        cases = [
            ({"conversation_id": conv}, ["body"]),
            ({"conversation_id": conv, "text": "   "}, ["body"]),
            ({"conversation_id": conv, "to": PHONE, "text": "x"}, ["body"]),
            ({"text": "x"}, ["body"]),
            ({"to": "5555550100", "text": "x"}, ["body", "to"]),
            ({"to": "+0123", "text": "x"}, ["body", "to"]),
            ({"conversation_id": conv, "text": 123}, ["body", "text"]),
            ({"conversation_id": "not-a-uuid", "text": "x"}, ["body", "conversation_id"]),
            (
                {"conversation_id": conv, "text": "x", "send_style": "wiggle"},
                ["body", "send_style"],
            ),
            (
                {"conversation_id": conv, "media_urls": ["http://a/x.png", "http://a/y.png"]},
                ["body", "media_urls"],
            ),
            ({"conversation_id": conv, "media_urls": ["ftp://a/x.png"]}, ["body", "media_urls"]),
            ({"conversation_id": conv, "text": "x" * 18_997}, ["body", "text"]),
            ({"to": [PHONE, PHONE_2], "text": "group"}, ["body", "to"]),
            ([1, 2], ["body"]),
        ]
        for body, loc in cases:
            r = await api.post(MSGS, body, params=q)
            assert r.status == 422, (body, r.body)
            assert isinstance(r.body["detail"], list)
            assert r.body["detail"][0]["loc"][: len(loc)] == loc, (body, r.body)
            assert {"loc", "msg", "type"} <= set(r.body["detail"][0])
        r = await api.call(
            "POST", MSGS, data=b'{"text": "x",', headers={"Content-Type": "application/json"}
        )
        assert r.status == 422
        assert r.body["detail"][0]["type"] == "json_invalid"
        r = await api.call("POST", MSGS, data=b"", headers={"Content-Type": "application/json"})
        assert r.status == 422
        r = await api.post(
            MSGS, {"conversation_id": conv, "text": "x"}, headers={"Idempotency-Key": " "}
        )
        assert r.status == 422
        assert r.body["detail"][0]["loc"] == ["header", "Idempotency-Key"]
        assert sim.snapshot() == before
        r = await api.send(conv, "x" * 18_996)  # one over MAX_TEXT_LENGTH
        assert r.status == 422
        r = await api.send(conv, "x" * 18_995)
        assert r.status == 201


async def test_idempotency_replay_and_reuse(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        headers = {"Idempotency-Key": "send-1", "Prefer": "idempotency-replay"}
        first = await api.post(MSGS, {"conversation_id": conv, "text": "once"}, headers=headers)
        assert first.status == 201
        second = await api.post(MSGS, {"conversation_id": conv, "text": "once"}, headers=headers)
        assert second.status == 201
        assert second.body == first.body
        listed = (await api.get(MSGS, params={"conversation_id": conv})).body
        assert [m["content"] for m in listed].count("once") == 1
        before = sim.snapshot()
        third = await api.post(
            MSGS, {"conversation_id": conv, "text": "different"}, headers=headers
        )
        assert third.status == 409
        assert third.body["detail"]["error"] == "idempotency_key_reused"
        assert sim.snapshot() == before
        ident = (await api.get("/api/v1/identities/echo")).body
        r = await api.get(
            "/api/v1/message-sends/lookup",
            params={
                "sender_kind": "imessage_identity",
                "sender_id": ident["id"],
                "operation": "imessage.send",
            },
            headers={"Idempotency-Key": "send-1"},
        )
        assert r.status == 200
        assert r.body == {"message_id": first.body["message"]["id"]}


async def test_send_cap_429_with_retry_after(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(send_cap=3)
        api = Api(session, sim.base_url, sim.admin_key)
        await api.identity()
        conv = await api.connect(PHONE)
        first = await api.post(
            MSGS, {"conversation_id": conv, "text": "m0"}, headers={"Idempotency-Key": "k0"}
        )
        assert first.status == 201
        for i in (1, 2):
            assert (await api.send(conv, f"m{i}")).status == 201
        before = sim.snapshot()
        r = await api.send(conv, "one too many")
        assert r.status == 429
        assert r.body["detail"]["error"] == "sender_rate_limited"
        retry_after = int(r.headers["Retry-After"])
        assert 86_000 < retry_after <= 86_400
        assert sim.snapshot() == before
        # Replaying an accepted send is not a new send, so the cap does not refuse it.
        r = await api.post(
            MSGS, {"conversation_id": conv, "text": "m0"}, headers={"Idempotency-Key": "k0"}
        )
        assert r.status == 201 and r.body == first.body


async def test_list_filters_and_pagination(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        for i in range(5):
            assert (await api.send(conv, f"m{i}")).status == 201
        page = (await api.get(MSGS, params={"limit": "2"})).body
        assert [m["content"] for m in page] == ["m4", "m3"]
        page = (await api.get(MSGS, params={"limit": "2", "offset": "2"})).body
        assert [m["content"] for m in page] == ["m2", "m1"]
        unread = (await api.get(MSGS, params={"is_read": "false", "conversation_id": conv})).body
        assert len(unread) == 6  # outbound rows are never read; the connect text is unread
        r = await api.post("/api/v1/imessage/mark-read", {"conversation_id": conv})
        assert r.body["updated_count"] == 1
        read = (await api.get(MSGS, params={"is_read": "true"})).body
        assert [m["direction"] for m in read] == ["inbound"]
        for bad in (
            {"limit": "0"},
            {"limit": "201"},
            {"offset": "-1"},
            {"limit": "x"},
            {"is_read": "maybe"},
            {"conversation_id": "nope"},
        ):
            r = await api.get(MSGS, params=bad)
            assert r.status == 422, bad
            assert r.body["detail"][0]["loc"][0] == "query"
        r = await api.get(
            MSGS, params={"start_datetime": "2000-01-01", "end_datetime": "2000-01-02"}
        )
        assert r.status == 200 and r.body == []
        r = await api.get(
            MSGS, params={"start_datetime": "2000-01-01T00:00:00", "tz": "Europe/Paris"}
        )
        assert r.status == 200 and len(r.body) == 6
        r = await api.get(MSGS, params={"tz": "Mars/Olympus"})
        assert r.status == 422


async def test_reply_threads(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        inbound = (await api.get(MSGS, params={"conversation_id": conv})).body[0]
        r = await api.send(conv, "threaded", reply_to_message_id=inbound["id"])
        assert r.status == 201
        reply = r.body["message"]
        assert reply["reply_to_message_id"] == inbound["id"]
        assert reply["thread_root_message_id"] == inbound["id"]
        thread = await api.get(f"{MSGS}/{inbound['id']}/thread")
        assert thread.status == 200
        assert [m["id"] for m in thread.body["messages"]] == [inbound["id"], reply["id"]]
        by_id = await api.get(
            f"/api/v1/imessage/conversations/{conv}/threads/{reply['thread_id']}",
            params={"limit": "1"},
        )
        assert by_id.status == 200
        assert len(by_id.body["messages"]) == 1 and by_id.body["next_cursor"] == "1"
        r = await api.send(conv, "x", reply_to_message_id="00000000-0000-4000-8000-000000000000")
        assert r.status == 404
