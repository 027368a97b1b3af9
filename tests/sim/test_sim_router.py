"""The router and the human side: connect, reconnect, routing, unreachable phones."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
from support.simapi import (
    PHONE,
    PHONE_2,
    Api,
    Receiver,
    SimFactory,
    SimHandle,
    subscribe,
    wait_until,
)

from imbot.sim import SimConfig, Simulator

MSGS = "/api/v1/imessage/messages"
RULES_OF = "/api/v1/imessage/identities/"


def _timeline_path(number: str = PHONE) -> str:
    return f"/sim/v1/phones/{number}/timeline"


async def test_connect_event_reaches_the_agent_first(api: Api, receiver: Receiver) -> None:
    """The old flow, on request (``connect_event=True``, the ``api`` fixture's simulator)."""
    with anyio.fail_after(10):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url)
        r = await api.text(PHONE, "Connect  @Echo ")
        assert r.status == 201
        item = r.body["item"]
        assert item["thread"] == "router" and item["from"] == "me"
        events = await receiver.wait_for(1, "imessage.received")
        message = events[0]["data"]["message"]
        assert message["content"] == "Connect  @Echo " and message["direction"] == "inbound"
        assert message["status"] == "received" and message["remote_number"] == PHONE
        conv = message["conversation_id"]
        # The agent may reply straight away, and the router confirmed.
        assert (await api.send(conv, "Hi! I'm echo.")).status == 201
        timeline = (await api.get(_timeline_path())).body
        router = [i for i in timeline["items"] if i["thread"] == "router" and i["from"] == "them"]
        assert router[-1]["text"].startswith("Connected to @echo")
        threads = {t["thread"]: t for t in timeline["threads"]}
        assert threads["echo"]["conversation_id"] == conv and threads["echo"]["status"] == "active"
        assert threads["router"]["conversation_id"] is None


async def test_inkbox_connect_flow_is_the_default(
    make_sim: SimFactory, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """§10/§18: the connect text is no event; the agent's number writes in a new thread."""
    assert Simulator().config.connect_event is False and SimConfig().connect_event is False
    with anyio.fail_after(10):
        sim = make_sim(connect_event=False)
        api = Api(session, sim.base_url, sim.admin_key)
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url)
        r = await api.text(PHONE, "connect @echo")
        assert r.status == 201 and r.body["item"]["thread"] == "router"
        assert r.body["item"]["from"] == "me" and r.body["item"]["system"] is False
        conv = await api.connect(PHONE)  # "already connected": same conversation
        timeline = (await api.get(_timeline_path())).body
        router = [i for i in timeline["items"] if i["thread"] == "router" and i["from"] == "them"]
        assert router[0]["text"].startswith("Connected to @echo.")
        assert "its own number" in router[0]["text"]
        # The number now assigned to the agent texts the human, in the agent's thread; the
        # note is the service's, not the agent's: no API message, flagged `system`.
        [note] = [i for i in timeline["items"] if i["thread"] == "echo"]
        assert note["from"] == "them" and note["system"] is True
        assert note["conversation_id"] == conv and "@echo" in note["text"]
        assert (await api.get(MSGS)).body == []
        threads = {t["thread"]: t for t in timeline["threads"]}
        assert threads["echo"]["conversation_id"] == conv
        # The agent may not write first.
        early = await api.send(conv, "Hi! I'm echo.")
        assert early.status == 409
        assert early.body["detail"]["error"] == "recipient_has_not_messaged"
        await anyio.sleep(0.2)
        assert receiver.events() == []  # the connect text reached nobody
        # The human's first message in the new thread is the agent's first event.
        await api.text(PHONE, "hi", to="echo")
        events = await receiver.wait_for(1)
        assert [e["event_type"] for e in events] == ["imessage.received"]
        assert events[0]["data"]["message"]["content"] == "hi"
        assert events[0]["data"]["message"]["conversation_id"] == conv
        assert (await api.send(conv, "Hi! I'm echo.")).status == 201


async def test_unknown_disabled_handles_get_the_generic_reply(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity("dormant", enabled=False)
        r = await api.text(PHONE, "connect @nobody")
        reply = (await api.get(_timeline_path())).body["items"][-1]
        assert "couldn't find an agent called @nobody" in reply["text"]
        assert "no agent here you can text yet" in reply["text"]
        await api.identity()
        await api.identity("helper")
        for handle in ("nobody", "dormant"):
            r = await api.text(PHONE, f"connect @{handle}")
            assert r.status == 201
            reply = (await api.get(_timeline_path())).body["items"][-1]
            assert reply["from"] == "them" and reply["thread"] == "router"
            assert f"couldn't find an agent called @{handle}" in reply["text"]
            # Which agents exist, rather than the same typo again (issue 14, item 2).
            assert "Agents you can text here: @echo, @helper." in reply["text"]
            assert f"connect @{handle}" not in reply["text"]
            assert "dormant" not in reply["text"].split("here:")[1]
        assert (await api.get("/api/v1/imessage/conversations")).body == []
        assert (await api.get("/api/v1/imessage/assignments")).body == []


async def test_an_agent_that_blocks_the_phone_is_not_listed(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("helper")
        rule = {"action": "block", "match_type": "exact_number", "match_target": PHONE}
        assert (await api.post(f"{RULES_OF}helper/contact-rules", rule)).status == 201
        await api.text(PHONE, "connect @helper")
        reply = (await api.get(_timeline_path())).body["items"][-1]["text"]
        # The same answer as for an unknown handle; the list does not give the block away.
        assert "couldn't find an agent called @helper" in reply
        assert "Agents you can text here: @echo." in reply


async def test_routing_to_and_most_recent(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("other")
        r = await api.text(PHONE, "anyone?")
        assert r.body["item"]["thread"] == "router"
        reply = (await api.get(_timeline_path())).body["items"][-1]
        assert (
            reply["text"] == "You're not connected to an agent yet. Text connect @handle to start."
        )
        echo = await api.connect(PHONE)
        r = await api.text(PHONE, "connect @other")
        assert r.status == 201
        other = next(
            c["id"]
            for c in (await api.get("/api/v1/imessage/conversations")).body
            if c["id"] != echo
        )
        r = await api.text(PHONE, "to the latest")
        assert r.body["item"]["conversation_id"] == other and r.body["item"]["thread"] == "other"
        r = await api.text(PHONE, "to echo", to="echo")
        assert r.body["item"]["conversation_id"] == echo
        r = await api.text(PHONE, "no such", to="ghost")
        assert r.body["item"]["thread"] == "router"
        again = await api.text(PHONE, "connect @echo")
        assert again.status == 201
        reply = (await api.get(_timeline_path())).body["items"][-1]
        assert "already connected" in reply["text"]
        assert len((await api.get("/api/v1/imessage/assignments")).body) == 2
        r = await api.text("12345", "hi")
        assert r.status == 422 and r.body["detail"][0]["loc"] == ["path", "number"]


async def test_release_then_reconnect_reuses_the_conversation(api: Api, receiver: Receiver) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        conv = await api.connect(PHONE)
        first = (await api.get("/api/v1/imessage/assignments")).body[0]
        assert (await api.delete(f"/api/v1/imessage/assignments/{first['id']}")).status == 204
        r = await api.text(PHONE, "still there?", to="echo")
        assert r.body["item"]["status"] == "failed" and r.body["item"]["thread"] == "echo"
        r = await api.text(PHONE, "still there?")
        assert r.body["item"]["thread"] == "router"
        conv_after = await api.connect(PHONE)
        assert conv_after == conv
        second = (await api.get("/api/v1/imessage/assignments")).body[0]
        assert second["id"] != first["id"]
        one = (await api.get(f"/api/v1/imessage/conversations/{conv}")).body
        assert one["assignment_id"] == second["id"] and one["assignment_status"] == "active"
        assert (await api.send(conv, "welcome back")).status == 201
        events = await receiver.wait_for(2)
        assert [e["data"]["message"]["assignment_id"] for e in events] == [
            first["id"],
            second["id"],
        ]


async def test_unreachable_phone_fails_delivery(api: Api, receiver: Receiver) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        await subscribe(
            api, ident["id"], receiver.url, ["imessage.sent", "imessage.delivery_failed"]
        )
        conv = await api.connect(PHONE)
        r = await api.put(
            f"/sim/v1/phones/{PHONE}", {"unreachable": True, "error_code": "device_off"}
        )
        assert r.status == 200
        assert {k: r.body[k] for k in ("number", "unreachable", "error_code")} == {
            "number": PHONE,
            "unreachable": True,
            "error_code": "device_off",
        }
        sent = (await api.send(conv, "are you there")).body["message"]
        events = await receiver.wait_for(1, "imessage.delivery_failed")
        failed = events[0]["data"]["message"]
        assert failed["id"] == sent["id"] and failed["status"] == "error"
        assert failed["error_code"] == "device_off"
        assert failed["recipients"][0]["failed_at"]
        assert (await api.message(sent["id"]))["status"] == "error"
        item = next(
            i for i in (await api.get(_timeline_path())).body["items"] if i["id"] == sent["id"]
        )
        assert item["status"] == "failed"
        r = await api.put(f"/sim/v1/phones/{PHONE}", {"unreachable": False})
        assert r.body["error_code"] is None
        again = (await api.send(conv, "now?")).body["message"]

        async def delivered() -> bool:
            return bool((await api.message(again["id"]))["status"] == "delivered")

        assert await wait_until(delivered)
        # The failed message was never "sent"; the second one was.
        sent_ids = [e["data"]["message"]["id"] for e in await receiver.wait_for(1, "imessage.sent")]
        assert sent["id"] not in sent_ids and again["id"] in sent_ids
        assert (await api.put("/sim/v1/phones/nope", {"unreachable": True})).status == 422
        assert (await api.put(f"/sim/v1/phones/{PHONE}", {"unreachable": "x"})).status == 422


async def test_unreachable_from_the_start(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(unreachable=[PHONE_2])
        api = Api(session, sim.base_url, sim.admin_key)
        await api.identity()
        conv = await api.connect(PHONE_2)
        sent = (await api.send(conv, "x")).body["message"]

        async def failed() -> dict[str, Any] | None:
            m = await api.message(sent["id"])
            return m if m["status"] == "error" else None

        assert (await wait_until(failed))["error_code"] == "unreachable"


async def test_text_to_the_router_thread_stays_with_the_router(api: Api) -> None:
    """A non-connect text addressed to the router gets its help, not an agent."""
    with anyio.fail_after(10):
        await api.identity()
        await api.connect(PHONE)
        r = await api.text(PHONE, "hello?", to="router")
        assert r.status == 201 and r.body["item"]["thread"] == "router"
        items = (await api.get(_timeline_path())).body["items"]
        assert items[-1]["from"] == "them" and items[-1]["thread"] == "router"
        assert "connect @handle" in items[-1]["text"]
        # One name for the router everywhere: the chat page calls it the Inkbox router.
        assert items[-1]["text"].startswith("This is the Inkbox router.")
        assert "imbot router" not in items[-1]["text"]
        assert all(i["text"] != "hello?" for i in items if i["thread"] == "echo")
        inbound = (await api.get("/api/v1/imessage/messages")).body
        assert all(m["content"] != "hello?" for m in inbound)


async def test_a_phone_that_becomes_unreachable_fails_the_next_send(
    api: Api, receiver: Receiver
) -> None:
    # The lifecycle keeps phone states in memory: the PUT must reach that copy too.
    with anyio.fail_after(10):
        ident = await api.identity()
        await subscribe(
            api, ident["id"], receiver.url, ["imessage.delivered", "imessage.delivery_failed"]
        )
        conv = await api.connect(PHONE)
        first = (await api.send(conv, "hello")).body["message"]
        delivered = await receiver.wait_for(1, "imessage.delivered")
        assert delivered[0]["data"]["message"]["id"] == first["id"]
        r = await api.put(f"/sim/v1/phones/{PHONE}", {"unreachable": True})
        assert r.status == 200
        second = (await api.send(conv, "still there?")).body["message"]
        failed = await receiver.wait_for(1, "imessage.delivery_failed")
        assert failed[0]["data"]["message"]["id"] == second["id"]
        assert failed[0]["data"]["message"]["error_code"] == "unreachable"
