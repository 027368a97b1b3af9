"""Identities, API keys, whoami, signing keys, the triage number."""

from __future__ import annotations

import anyio
from support.simapi import PHONE, Api, SimHandle

IDS = "/api/v1/identities"


async def test_missing_or_wrong_key_is_401(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        before = sim.snapshot()
        for key in (None, "ApiKey_wrong"):
            anon = api.as_key(key)
            for method, path in (
                ("GET", "/api/whoami"),
                ("GET", "/api/v1/imessage/messages"),
                ("POST", "/api/v1/imessage/messages"),
                ("GET", IDS),
                ("POST", "/sim/v1/identities/echo/api-keys"),
            ):
                r = await anon.call(method, path)
                assert r.status == 401, (key, path)
                assert isinstance(r.body["detail"], str)
        assert sim.snapshot() == before
        # The human side needs no key.
        assert (await api.as_key(None).get("/sim/v1/info")).status == 200


async def test_identity_crud(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        r = await api.post(IDS + "/", {"agent_handle": "@support-bot", "display_name": "Support"})
        assert r.status == 201
        created = r.body
        assert created["agent_handle"] == "support-bot"
        assert created["imessage_enabled"] is False
        assert created["imessage_filter_mode"] == "blacklist"
        assert created["signing_key_configured"] is False
        dup = await api.post(IDS, {"agent_handle": "Support-Bot"})
        assert dup.status == 409 and dup.body["detail"]["error"] == "agent_handle_unavailable"
        for bad in ({}, {"agent_handle": ""}, {"agent_handle": "has space"}, {"agent_handle": 5}):
            assert (await api.post(IDS, bad)).status == 422, bad
        assert [i["agent_handle"] for i in (await api.get(IDS)).body] == ["support-bot"]
        assert [i["agent_handle"] for i in (await api.get(IDS + "/")).body] == ["support-bot"]
        assert (await api.get(IDS + "/support-bot")).body["id"] == created["id"]
        assert (await api.get(IDS + "/@support-bot")).body["id"] == created["id"]
        assert (await api.get(IDS + "/nobody")).status == 404
        r = await api.patch(IDS + "/support-bot", {"imessage_enabled": True, "description": "d"})
        assert r.status == 200
        assert r.body["imessage_enabled"] is True and r.body["description"] == "d"
        assert r.body["display_name"] == "Support"
        r = await api.patch(IDS + "/support-bot", {"display_name": None})
        assert r.body["display_name"] is None and r.body["description"] == "d"
        before = sim.snapshot()
        assert (
            await api.patch(IDS + "/support-bot", {"imessage_enabled": "sometimes"})
        ).status == 422
        assert (
            await api.post(IDS, {"agent_handle": "x", "claim_imessage_number": True})
        ).status == 402
        assert sim.snapshot() == before
        agent = api.as_key(await api.key_for("support-bot"))
        assert (await agent.post(IDS, {"agent_handle": "mine"})).status == 403
        assert (await agent.delete(IDS + "/support-bot")).status == 403
        assert (await api.delete(IDS + "/support-bot")).status == 204
        assert (await api.get(IDS + "/support-bot")).status == 404
        # Deleting an identity revokes its keys.
        assert (await agent.get("/api/whoami")).status == 401


async def test_identity_keys_see_only_their_identity(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("other")
        r = await api.post("/sim/v1/identities/echo/api-keys", {"label": "ci"})
        assert r.status == 201
        assert r.body["agent_handle"] == "echo" and r.body["api_key"].startswith("ApiKey_")
        agent = api.as_key(r.body["api_key"])
        assert [i["agent_handle"] for i in (await agent.get(IDS)).body] == ["echo"]
        assert (await agent.get(IDS + "/other")).status == 403
        assert (await agent.patch(IDS + "/other", {"description": "x"})).status == 403
        assert (await agent.post("/sim/v1/identities/echo/api-keys")).status == 403
        me = (await agent.get("/api/whoami")).body
        assert me["auth_type"] == "api_key"
        assert me["auth_subtype"] == "api_key.agent_scoped.claimed"
        assert me["label"] == "ci"
        admin = (await api.get("/api/whoami")).body
        assert admin["auth_subtype"] == "api_key.admin_scoped"
        assert admin["organization_id"].startswith("org_")
        triage = (await agent.get("/api/v1/imessage/triage-number")).body
        assert triage["connect_command"] == "connect @echo"
        admin_triage = (await api.get("/api/v1/imessage/triage-number")).body
        assert admin_triage["number"] == "+15550100000"


async def test_signing_keys(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        path = IDS + "/echo/signing-key"
        status = (await api.get(path)).body
        assert status == {"configured": False, "created_at": None}
        first = (await api.post(path, {})).body
        assert first["signing_key"].startswith("whsec_")
        second = (await api.post(path, {})).body
        assert second["signing_key"] != first["signing_key"]
        status = (await api.get(path)).body
        assert status["configured"] is True and status["created_at"] == second["created_at"]
        ident = (await api.get(IDS + "/echo")).body
        assert ident["signing_key_configured"] is True
        assert (await api.post("/api/v1/signing-keys", {})).status == 409
        agent = api.as_key(await api.key_for("echo"))
        rotated = await agent.post("/api/v1/signing-keys", {})
        assert rotated.status == 200 and rotated.body["signing_key"].startswith("whsec_")


async def test_info_lists_enabled_handles_and_phones(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        await api.identity("dormant", enabled=False)
        await api.connect(PHONE)
        info = (await api.get("/sim/v1/info")).body
        assert info == {"router_number": "+15550100000", "handles": ["echo"], "phones": [PHONE]}


async def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    with anyio.fail_after(10):
        r = await api.get("/api/v1/nothing-here")
        assert r.status == 404 and r.body == {"detail": "Not Found"}
        r = await api.call("PUT", "/api/v1/imessage/messages")
        assert r.status == 405 and r.body == {"detail": "Method Not Allowed"}
        r = await api.get("/api/v1/imessage/numbers")
        assert r.status == 200 and r.body == []
