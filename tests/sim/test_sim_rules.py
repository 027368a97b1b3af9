"""Contact rules, filter modes and what they block."""

from __future__ import annotations

import anyio
from support.simapi import PHONE, PHONE_2, Api, Receiver, SimHandle, subscribe

RULES = "/api/v1/imessage/identities/echo/contact-rules"
MSGS = "/api/v1/imessage/messages"


async def test_rule_crud_and_duplicates(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        r = await api.post(RULES, {"action": "block", "match_target": PHONE})
        assert r.status == 201
        rule = r.body
        assert rule["status"] == "active" and rule["direction"] == "both"
        assert rule["match_type"] == "exact_number" and rule["agent_identity_id"] == ident["id"]
        before = sim.snapshot()
        dup = await api.post(
            RULES, {"action": "allow", "match_target": PHONE, "direction": "inbound"}
        )
        assert dup.status == 409 and dup.body["detail"]["existing_rule_id"] == rule["id"]
        for bad in (
            {"action": "block", "match_target": "5555550100"},
            {"action": "maybe", "match_target": PHONE_2},
            {"action": "block"},
            {"action": "block", "match_target": PHONE_2, "match_type": "prefix"},
            {"action": "block", "match_target": PHONE_2, "direction": "sideways"},
        ):
            assert (await api.post(RULES, bad)).status == 422, bad
        assert sim.snapshot() == before
        inbound = await api.post(
            RULES, {"action": "allow", "match_target": PHONE_2, "direction": "inbound"}
        )
        assert inbound.status == 201
        outbound = await api.post(
            RULES, {"action": "block", "match_target": PHONE_2, "direction": "outbound"}
        )
        assert outbound.status == 201
        listed = (await api.get(RULES)).body
        assert [x["id"] for x in listed] == [outbound.body["id"], inbound.body["id"], rule["id"]]
        only_in = (await api.get(RULES, params={"direction": "inbound"})).body
        assert {x["id"] for x in only_in} == {inbound.body["id"], rule["id"]}
        only_both = (await api.get(RULES, params={"direction": "both"})).body
        assert [x["id"] for x in only_both] == [rule["id"]]
        blocks = (await api.get(RULES, params={"action": "block"})).body
        assert {x["id"] for x in blocks} == {outbound.body["id"], rule["id"]}
        got = await api.get(f"{RULES}/{rule['id']}")
        assert got.status == 200 and got.body == rule
        r = await api.patch(f"{RULES}/{rule['id']}", {"status": "paused"})
        assert r.status == 200 and r.body["status"] == "paused"
        r = await api.patch(f"{RULES}/{rule['id']}", {})
        assert r.status == 422
        r = await api.patch(f"{RULES}/{rule['id']}", {"action": "allow", "apply_to": "inbound"})
        assert r.status == 200
        assert r.body["direction"] == "inbound" and r.body["action"] == "allow"
        assert (await api.get(f"{RULES}/{rule['id']}")).body["direction"] == "outbound"
        org = (await api.get("/api/v1/imessage/contact-rules")).body
        assert len(org) == 4
        assert (await api.delete(f"{RULES}/{rule['id']}")).status == 204
        assert (await api.get(f"{RULES}/{rule['id']}")).status == 404
        assert (await api.get("/api/v1/imessage/identities/@echo/contact-rules")).status == 200
        assert (await api.get("/api/v1/imessage/identities/nobody/contact-rules")).status == 404


async def test_identity_keys_and_rules(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("other")
        agent = api.as_key(await api.key_for("echo"))
        r = await agent.post(RULES, {"action": "block", "match_target": PHONE})
        assert r.status == 201
        rule_id = r.body["id"]
        assert (await agent.get(RULES)).status == 200
        before = sim.snapshot()
        foreign = "/api/v1/imessage/identities/other/contact-rules"
        assert (await agent.get(foreign)).status == 403
        assert (await agent.post(foreign, {"action": "block", "match_target": PHONE})).status == 403
        assert (await agent.patch(f"{RULES}/{rule_id}", {"status": "paused"})).status == 403
        assert (await agent.delete(f"{RULES}/{rule_id}")).status == 403
        assert (await agent.get("/api/v1/imessage/contact-rules")).status == 403
        r = await agent.patch("/api/v1/identities/echo", {"imessage_filter_mode": "whitelist"})
        assert r.status == 403
        assert sim.snapshot() == before


async def test_blacklist_blocks_inbound_and_outbound(
    api: Api, receiver: Receiver, sim: SimHandle
) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        conv = await api.connect(PHONE)
        await receiver.wait_for(1)
        rule = (await api.post(RULES, {"action": "block", "match_target": PHONE})).body
        r = await api.text(PHONE, "can you hear me?")
        assert r.status == 201
        stored = (await api.get(MSGS, params={"is_blocked": "true"})).body
        assert [m["content"] for m in stored] == ["can you hear me?"]
        assert stored[0]["is_blocked"] is True
        agent = api.as_key(await api.key_for("echo"))
        assert all(not m["is_blocked"] for m in (await agent.get(MSGS)).body)
        assert (await agent.get(f"{MSGS}/{stored[0]['id']}")).status == 404
        before = sim.snapshot()
        r = await api.send(conv, "hello?")
        assert r.status == 403
        detail = r.body["detail"]
        assert detail["error"] == "recipient_blocked"
        assert detail["matched_rule_id"] == rule["id"] and detail["address"] == PHONE
        assert detail["reason"]
        inbound = (await api.get(MSGS, params={"is_blocked": "false"})).body[0]
        r = await api.post(
            "/api/v1/imessage/reactions", {"message_id": inbound["id"], "reaction": "love"}
        )
        assert r.status == 403
        assert sim.snapshot() == before
        # No webhook for the blocked text: only the connect text was announced.
        await api.patch(f"{RULES}/{rule['id']}", {"status": "paused"})
        await api.text(PHONE, "now?")
        events = await receiver.wait_for(2)
        assert [e["data"]["message"]["content"] for e in events] == ["connect @echo", "now?"]
        assert "is_blocked" not in events[0]["data"]["message"]


async def test_whitelist_mode(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        conv = await api.connect(PHONE)
        r = await api.patch("/api/v1/identities/echo", {"imessage_filter_mode": "whitelist"})
        assert r.status == 200 and r.body["imessage_filter_mode"] == "whitelist"
        r = await api.send(conv, "hi")
        assert r.status == 403
        assert r.body["detail"]["matched_rule_id"] is None
        # Connect needs permission both ways; a default-blocked human gets the generic reply.
        r = await api.text(PHONE_2, "connect @echo")
        assert r.status == 201
        convs = (await api.get("/api/v1/imessage/conversations")).body
        assert [c["remote_number"] for c in convs] == [PHONE]
        timeline = (await api.get(f"/sim/v1/phones/{PHONE_2}/timeline")).body
        assert "couldn't find" in timeline["items"][-1]["text"]
        await api.post(RULES, {"action": "allow", "match_target": PHONE})
        assert (await api.send(conv, "hi")).status == 201
        await api.post(RULES, {"action": "allow", "match_target": PHONE_2, "direction": "inbound"})
        await api.text(PHONE_2, "connect @echo")
        assert len((await api.get("/api/v1/imessage/conversations")).body) == 1
        await api.post(RULES, {"action": "allow", "match_target": PHONE_2, "direction": "outbound"})
        await api.text(PHONE_2, "connect @echo")
        assert len((await api.get("/api/v1/imessage/conversations")).body) == 2
        r = await api.patch("/api/v1/identities/echo", {"imessage_filter_mode": "greylist"})
        assert r.status == 422
        r = await api.patch(
            "/api/v1/identities/echo",
            {"phone_inbound_filter_mode": "blacklist", "phone_outbound_filter_mode": "whitelist"},
        )
        assert r.status == 422
        assert ident["imessage_filter_mode"] == "blacklist"
