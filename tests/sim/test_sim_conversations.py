"""Conversations, assignments, read state and typing."""

from __future__ import annotations

import aiohttp
import anyio
from support.simapi import PHONE, PHONE_2, Api, SimFactory, SimHandle, wait_until

CONVS = "/api/v1/imessage/conversations"
TIMELINE = f"/sim/v1/phones/{PHONE}/timeline"


async def test_conversation_summaries_and_counts(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        await api.text(PHONE, "second")
        await api.text(PHONE, "third")
        conv2 = await api.connect(PHONE_2)
        r = await api.send(conv, "reply")
        assert r.status == 201
        listed = (await api.get(CONVS)).body
        assert [c["id"] for c in listed] == [conv, conv2]
        first = listed[0]
        assert first["unread_count"] == 3
        assert first["total_count"] == 4
        assert first["latest_text"] == "reply"
        assert first["latest_direction"] == "outbound"
        assert first["latest_has_media"] is False
        assert first["assignment_status"] == "active"
        assert first["is_group"] is False
        one = (await api.get(f"{CONVS}/{conv}")).body
        assert one["id"] == conv and one["remote_number"] == PHONE
        assert one["assignment_id"] == first["assignment_id"]
        r = await api.get(f"{CONVS}/00000000-0000-4000-8000-000000000000")
        assert r.status == 404
        r = await api.get(f"{CONVS}/nope")
        assert r.status == 422 and r.body["detail"][0]["loc"] == ["path", "conversation_id"]
        page = (await api.get(CONVS, params={"limit": "1", "offset": "1"})).body
        assert [c["id"] for c in page] == [conv2]


async def test_mark_read_updates_counts_and_the_phone(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        await api.text(PHONE, "two")
        items = (await api.get(TIMELINE)).body["items"]
        assert {i["status"] for i in items if i["from"] == "me"} == {"delivered"}
        r = await api.post("/api/v1/imessage/mark-read", {"conversation_id": conv})
        assert r.status == 200
        assert r.body == {"conversation_id": conv, "updated_count": 2}
        again = await api.post("/api/v1/imessage/mark-read", {"conversation_id": conv})
        assert again.body["updated_count"] == 0
        summary = (await api.get(CONVS)).body[0]
        assert summary["unread_count"] == 0
        items = (await api.get(TIMELINE)).body["items"]
        mine = [i for i in items if i["from"] == "me"]
        assert [i["status"] for i in mine] == ["read", "read"]
        r = await api.post("/api/v1/imessage/mark-read", {"conversation_id": "bad"})
        assert r.status == 422


async def test_typing_shows_until_next_message(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        r = await api.post("/api/v1/imessage/typing", {"conversation_id": conv})
        assert r.status == 200 and r.body == {"status": "sent"}
        threads = (await api.get(TIMELINE)).body["threads"]
        assert next(t for t in threads if t["thread"] == "echo")["typing"] is True
        await api.send(conv, "done typing")

        async def stopped() -> bool:
            threads = (await api.get(TIMELINE)).body["threads"]
            return next(t for t in threads if t["thread"] == "echo")["typing"] is False

        assert await wait_until(stopped)


async def test_assignments_list_and_release(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        conv = await api.connect(PHONE)
        await api.connect(PHONE_2)
        listed = (await api.get("/api/v1/imessage/assignments")).body
        assert [a["remote_number"] for a in listed] == [PHONE_2, PHONE]
        assert all(a["agent_identity_id"] == ident["id"] for a in listed)
        assert all(a["status"] == "active" and a["released_at"] is None for a in listed)
        target = listed[1]
        agent = api.as_key(await api.key_for("echo"))
        before = sim.snapshot()
        r = await agent.delete(f"/api/v1/imessage/assignments/{target['id']}")
        assert r.status == 403
        assert sim.snapshot() == before
        r = await api.delete(f"/api/v1/imessage/assignments/{target['id']}")
        assert r.status == 204
        r = await api.delete(f"/api/v1/imessage/assignments/{target['id']}")
        assert r.status == 404
        listed = (await api.get("/api/v1/imessage/assignments")).body
        assert [a["remote_number"] for a in listed] == [PHONE_2]
        one = (await api.get(f"{CONVS}/{conv}")).body
        assert one["assignment_status"] == "released"
        for path in ("/api/v1/imessage/typing", "/api/v1/imessage/mark-read"):
            r = await api.post(path, {"conversation_id": conv})
            assert r.status == 409 and r.body["detail"]["error"] == "conversation_released"
        # Released is silent to the human: no router message about it.
        items = (await api.get(TIMELINE)).body["items"]
        assert not any("release" in (i["text"] or "").lower() for i in items)
        threads = (await api.get(TIMELINE)).body["threads"]
        assert next(t for t in threads if t["thread"] == "echo")["status"] == "released"


async def test_identity_key_lists_only_its_own(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        other = await api.identity("other")
        await api.connect(PHONE)
        await api.connect(PHONE_2, "other")
        agent = api.as_key(await api.key_for("echo"))
        convs = (await agent.get(CONVS)).body
        assert [c["remote_number"] for c in convs] == [PHONE]
        r = await agent.get(CONVS, params={"agent_identity_id": other["id"]})
        assert r.status == 403
        assert len((await api.get(CONVS)).body) == 2
        assert len((await api.get(CONVS, params={"agent_identity_id": other["id"]})).body) == 1
        assert [
            a["remote_number"] for a in (await agent.get("/api/v1/imessage/assignments")).body
        ] == [PHONE]
        await api.patch("/api/v1/identities/other", {"imessage_enabled": False})
        r = await api.get(CONVS, params={"agent_identity_id": other["id"]})
        assert r.status == 400


async def test_typing_expires_after_its_ttl(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(typing_ttl=0.2)
        api = Api(session, sim.base_url, sim.admin_key)
        await api.identity()
        conv = await api.connect(PHONE)
        await api.post("/api/v1/imessage/typing", {"conversation_id": conv})

        async def typing() -> bool:
            threads = (await api.get(TIMELINE)).body["threads"]
            return bool(next(t for t in threads if t["thread"] == "echo")["typing"])

        assert await typing()

        async def expired() -> bool:
            return not await typing()

        assert await wait_until(expired)
