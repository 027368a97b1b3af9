"""Tapbacks: the agent's (API) and the human's (phone), and their removal."""

from __future__ import annotations

from typing import Any

import anyio
from support.simapi import PHONE, Api, Receiver, SimHandle, subscribe

REACT = "/api/v1/imessage/reactions"
MSGS = "/api/v1/imessage/messages"
SENDABLE = ("love", "like", "dislike", "laugh", "emphasize", "question", "eyes")


async def _inbound(api: Api, conv: str) -> dict[str, Any]:
    return dict((await api.get(MSGS, params={"conversation_id": conv})).body[0])


async def test_seven_kinds_and_replacement(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        target = await _inbound(api, conv)
        last: dict[str, Any] = {}
        for kind in SENDABLE:
            r = await api.post(REACT, {"message_id": target["id"], "reaction": kind})
            assert r.status == 201, (kind, r.body)
            assert r.body["reaction"] == kind
            assert r.body["direction"] == "outbound"
            assert r.body["target_message_id"] == target["id"]
            assert r.body["conversation_id"] == conv
            assert r.body["part_index"] == 0
            last = r.body
        message = await api.message(target["id"])
        # Each new tapback replaced the previous one.
        assert [x["reaction"] for x in message["reactions"]] == ["eyes"]
        assert message["reactions"][0]["id"] == last["id"]
        timeline = (await api.get(f"/sim/v1/phones/{PHONE}/timeline")).body
        item = next(i for i in timeline["items"] if i["id"] == target["id"])
        assert item["reactions"] == [
            {"id": last["id"], "from": "them", "reaction": "eyes", "custom_emoji": None}
        ]


async def test_unsendable_kinds_are_422(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        target = await _inbound(api, conv)
        before = sim.snapshot()
        for body in (
            {"message_id": target["id"], "reaction": "custom"},
            {"message_id": target["id"], "reaction": "🎉"},
            {"message_id": target["id"], "reaction": "love", "part_index": -1},
            {"message_id": "nope", "reaction": "love"},
            {"reaction": "love"},
        ):
            r = await api.post(REACT, body)
            assert r.status == 422, body
        assert sim.snapshot() == before
        r = await api.post(
            REACT, {"message_id": "00000000-0000-4000-8000-000000000000", "reaction": "love"}
        )
        assert r.status == 404


async def test_remove_semantics(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        sent = (await api.send(conv, "rate me")).body["message"]
        target = await _inbound(api, conv)
        first = (await api.post(REACT, {"message_id": target["id"], "reaction": "like"})).body
        second = (await api.post(REACT, {"message_id": target["id"], "reaction": "love"})).body
        # Replaced already: removing it succeeds without doing anything.
        assert (await api.delete(f"{REACT}/{first['id']}")).status == 204
        assert [x["id"] for x in (await api.message(target["id"]))["reactions"]] == [second["id"]]
        assert (await api.delete(f"{REACT}/{second['id']}")).status == 204
        assert (await api.message(target["id"]))["reactions"] is None
        assert (await api.delete(f"{REACT}/{second['id']}")).status == 204
        unknown = await api.delete(f"{REACT}/00000000-0000-4000-8000-000000000000")
        assert unknown.status == 404
        human = await api.post(
            f"/sim/v1/phones/{PHONE}/reactions",
            {"message_id": sent["id"], "reaction": "custom", "custom_emoji": "🎉"},
        )
        assert human.status == 201
        before = sim.snapshot()
        r = await api.delete(f"{REACT}/{human.body['reaction']['id']}")
        assert r.status == 403 and r.body["detail"]["error"] == "not_reaction_sender"
        assert sim.snapshot() == before


async def test_human_tapback_fires_webhook_and_swaps(api: Api, receiver: Receiver) -> None:
    with anyio.fail_after(10):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.reaction_received"])
        conv = await api.connect(PHONE)
        sent = (await api.send(conv, "rate me")).body["message"]
        path = f"/sim/v1/phones/{PHONE}/reactions"
        r = await api.post(path, {"message_id": sent["id"], "reaction": "like"})
        assert r.status == 201
        r = await api.post(
            path, {"message_id": sent["id"], "reaction": "custom", "custom_emoji": "🎉"}
        )
        assert r.status == 201
        events = await receiver.wait_for(2, "imessage.reaction_received")
        first, second = events[0]["data"]["reaction"], events[1]["data"]["reaction"]
        assert events[0]["data"]["message"] is None
        assert first["direction"] == "inbound" and first["reaction"] == "like"
        assert second["reaction"] == "custom" and second["custom_emoji"] == "🎉"
        assert second["id"] != first["id"]
        live = (await api.message(sent["id"]))["reactions"]
        assert [(x["reaction"], x["custom_emoji"]) for x in live] == [("custom", "🎉")]
        bad = await api.post(path, {"message_id": sent["id"], "reaction": "custom"})
        assert bad.status == 422
        r = await api.post(
            "/sim/v1/phones/+15555550999/reactions", {"message_id": sent["id"], "reaction": "like"}
        )
        assert r.status == 404


async def test_identity_key_cannot_react_to_anothers_message(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("other")
        conv = await api.connect(PHONE)
        target = await _inbound(api, conv)
        other = api.as_key(await api.key_for("other"))
        r = await other.post(REACT, {"message_id": target["id"], "reaction": "love"})
        assert r.status == 404
        mine = (await api.post(REACT, {"message_id": target["id"], "reaction": "love"})).body
        r = await other.delete(f"{REACT}/{mine['id']}")
        assert r.status == 404
