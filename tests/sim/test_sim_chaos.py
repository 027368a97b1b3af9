"""Chaos mode on a real simulator: API faults, slow answers, outages, disturbed webhooks.

The simulator is set up with chaos off, then switched through ``PUT /sim/v1/chaos`` (the
chat page's switch), except where the test is about ``Simulator(chaos=...)`` itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from support import EXAMPLES, REPO_ROOT
from support.simapi import PHONE, Api, Receiver, SimFactory, SimHandle, subscribe, wait_until

from imbot.cli.main import main
from imbot.client import InkboxClient
from imbot.errors import TransportError
from imbot.sim import Chaos
from imbot.webhooks import verify

CHAOS = "/sim/v1/chaos"
DELIVERIES = "/api/v1/webhooks/deliveries"


async def switch(api: Api, spec: str) -> dict[str, Any]:
    r = await api.put(CHAOS, {"spec": spec})
    assert r.status == 200, r.body
    assert r.body["enabled"] is True
    return dict(r.body)


async def attempts(api: Api, event_id: str, count: int) -> list[dict[str, Any]] | None:
    """The delivery log's rows for one event, once there are ``count`` of them."""
    rows = (await api.get(DELIVERIES)).body["deliveries"]
    mine = [row for row in rows if row["event_id"] == event_id]
    return mine if len(mine) == count else None


async def statuses(api: Api, count: int) -> list[int]:
    return [(await api.get("/api/v1/identities")).status for _ in range(count)]


async def test_api_errors_answer_on_the_api_only_and_replay_for_a_seed(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(20):
        spec = "seed=21,api=100%"
        sim = make_sim(chaos=spec)
        first = Api(session, sim.base_url, sim.admin_key)
        seen = []
        for _ in range(30):
            r = await first.get("/api/v1/identities")
            seen.append(r.status)
            assert r.headers["X-Sim-Chaos"] == str(r.status)
            assert r.body["detail"]["message"].endswith("(simulator chaos mode)")
            if r.status in (429, 503):
                assert r.headers["Retry-After"] == "1"
            else:
                assert "Retry-After" not in r.headers
        assert set(seen) == {429, 502, 503}
        # The human's side and the chat page never meet chaos.
        assert (await first.get("/sim/v1/info")).status == 200
        assert (await first.get("/")).status == 200
        assert (await first.get("/static/chaos.js")).status == 200
        assert (await first.text(PHONE, "connect @nobody")).status == 201
        # Another simulator with the same seed fails the same calls the same way.
        other = make_sim(chaos=spec)
        again = Api(session, other.base_url, other.admin_key)
        assert await statuses(again, 30) == seen
        different = make_sim(chaos="seed=22,api=100%")
        assert await statuses(Api(session, different.base_url, different.admin_key), 30) != seen
        status = (await first.get(CHAOS)).body
        assert status["stats"]["api_calls"] == 30
        assert sum(status["stats"].get(code, 0) for code in ("429", "502", "503")) == 30


async def test_a_slow_answer_comes_after_the_client_gave_up_and_the_send_happens_once(
    api: Api, sim: SimHandle
) -> None:
    with anyio.fail_after(20):
        await api.identity()
        conversation = await api.connect(PHONE)
        key = await api.key_for("echo")
        await switch(api, "slow=100%,slow_delay=0.6")
        started = time.monotonic()
        slow = await api.send(conversation, "patience")
        assert slow.status == 201 and time.monotonic() - started >= 0.6
        # imbot's client times out on every attempt; its idempotency key keeps it one send.
        async with InkboxClient(
            api_key=key, base_url=sim.base_url, timeout=0.2, max_attempts=3
        ) as client:
            with pytest.raises(TransportError) as caught:
                await client.send_message(conversation_id=conversation, text="only once")
            sent_key = caught.value.idempotency_key
            assert sent_key
        assert (await api.put(CHAOS, {"enabled": False})).status == 200
        rows = (await api.get("/api/v1/imessage/messages")).body
        texts = [m["content"] for m in rows if m["direction"] == "outbound"]
        assert sorted(texts) == ["only once", "patience"]
        status = (await api.get(CHAOS)).body
        assert status["stats"]["slow"] == 4  # the first send, then three attempts


async def test_down_closes_api_connections_for_the_window_only(
    api: Api, sim: SimHandle, receiver: Receiver
) -> None:
    with anyio.fail_after(20):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        await receiver.wait_for(1)
        r = await api.post(f"{CHAOS}/down", {"seconds": 1.0})
        assert r.status == 200 and 0 < r.body["down_for"] <= 1.0
        assert r.body["enabled"] is False  # an outage needs no chaos switched on
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.get("/api/v1/identities")
        async with InkboxClient(
            api_key=sim.admin_key, base_url=sim.base_url, max_attempts=1
        ) as client:
            with pytest.raises(TransportError):
                await client.list_identities()
        # The phones, the page and webhook delivery go on during the outage.
        assert (await api.text(PHONE, "anyone there?")).status == 201
        events = await receiver.wait_for(2)
        assert events[-1]["data"]["message"]["content"] == "anyone there?"
        assert (await api.get("/sim/v1/info")).status == 200
        status = (await api.get(CHAOS)).body
        assert status["down_for"] > 0 and status["stats"]["down"] >= 2

        async def up() -> bool:
            try:
                return (await api.get("/api/v1/identities")).status == 200
            except aiohttp.ClientConnectionError:
                return False

        started = time.monotonic()
        await wait_until(up, timeout=3)
        assert time.monotonic() - started < 1.5
        assert (await api.get(CHAOS)).body["down_for"] == 0


async def test_a_duplicated_webhook_comes_twice_with_the_same_event_id(
    api: Api, receiver: Receiver
) -> None:
    with anyio.fail_after(20):
        ident = await api.identity()
        sub = await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        await receiver.wait_for(1)
        await switch(api, "duplicate=100%")
        for text in ("one", "two", "three"):
            assert (await api.text(PHONE, text)).status == 201
        events = await receiver.wait_for(7)
        got = [(e["id"], e["data"]["message"]["content"]) for e in events[1:]]
        one, two, three = got[0][0], got[2][0], got[4][0]
        assert got == [
            (one, "one"),
            (one, "one"),
            (two, "two"),
            (two, "two"),
            (three, "three"),
            (three, "three"),
        ]
        requests = receiver.requests[1:]
        assert len({c.headers["X-Inkbox-Request-ID"] for c in requests}) == 6
        for captured in requests:
            verify(captured.body, captured.headers, sub["signing_key"])

        async def logged() -> list[dict[str, Any]] | None:
            return await attempts(api, one, 2)

        rows = await wait_until(logged)
        first, second = sorted(rows, key=lambda row: row["attempt"])
        assert (first["success"], second["success"]) == (False, True)
        assert "was lost" in first["error_detail"] and first["response_status"] is None
        assert (await api.get(CHAOS)).body["stats"]["duplicate"] == 3


async def test_a_failed_first_delivery_is_logged_then_delivered_once(
    api: Api, receiver: Receiver
) -> None:
    with anyio.fail_after(20):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        await receiver.wait_for(1)
        await switch(api, "failed_first=100%")
        assert (await api.text(PHONE, "second try")).status == 201
        events = await receiver.wait_for(2)

        async def logged() -> list[dict[str, Any]] | None:
            return await attempts(api, events[1]["id"], 2)

        rows = await wait_until(logged)
        first, second = sorted(rows, key=lambda row: row["attempt"])
        assert first["success"] is False and "connection failed" in first["error_detail"]
        assert second["success"] is True and second["response_status"] == 200
        await anyio.sleep(0.3)
        assert [e["data"]["message"]["content"] for e in receiver.events()] == [
            "connect @echo",
            "second try",
        ]


async def test_a_late_webhook_holds_its_conversation_back_in_order(
    api: Api, receiver: Receiver
) -> None:
    with anyio.fail_after(20):
        ident = await api.identity()
        await subscribe(api, ident["id"], receiver.url, ["imessage.received"])
        await api.connect(PHONE)
        await receiver.wait_for(1)
        await switch(api, "late=100%,late_delay=0.4")
        sent_at = time.monotonic()
        for text in ("first", "second"):
            assert (await api.text(PHONE, text)).status == 201
        await receiver.wait_for(3)
        late = receiver.requests[1:]
        assert [c.json["data"]["message"]["content"] for c in late] == ["first", "second"]
        assert late[0].at - sent_at >= 0.4
        assert late[1].at - late[0].at >= 0.35  # each waits its turn, in order
        assert (await api.get(DELIVERIES, params={"success": "false"})).body["deliveries"] == []


async def test_a_calls_stream_names_the_conversation_it_is_about(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conversation = await api.connect(PHONE)
        sent = await api.send(conversation, "tap me")
        message_id = sent.body["message"]["id"]
        await switch(api, "api=100%,502=0,503=0")
        assert (await api.send(conversation, "again")).status == 429
        body = {"message_id": message_id, "reaction": "love"}
        assert (await api.post("/api/v1/imessage/reactions", body)).status == 429
        assert (await api.get(f"/api/v1/imessage/messages/{message_id}")).status == 429
        assert (await api.get(f"/api/v1/imessage/conversations/{conversation}")).status == 429
        assert (await api.get("/api/v1/imessage/conversations")).status == 429
        log = sim.portal.call(lambda: list(sim.sim.chaos.log))
        subject = f"@echo>{PHONE}"
        assert [fault.stream for fault in log] == [
            f"api POST /api/v1/imessage/messages {subject}",
            f"api POST /api/v1/imessage/reactions {subject}",
            f"api GET /api/v1/imessage/messages/{{message_id}} {subject}",
            f"api GET /api/v1/imessage/conversations/{{conversation_id}} {subject}",
            "api GET /api/v1/imessage/conversations",
        ]
        assert {fault.index for fault in log} == {0}


async def test_the_switch_refuses_bad_input_and_other_sites(api: Api) -> None:
    with anyio.fail_after(10):
        status = (await api.get(CHAOS)).body
        assert status["enabled"] is False and status["config"] is None
        assert status["presets"] == ["mild", "bad-day"]
        bad = await api.put(CHAOS, {"spec": "sunny"})
        assert bad.status == 422 and "unknown chaos preset" in bad.body["detail"][0]["msg"]
        assert (await api.put(CHAOS, {})).status == 422
        assert (await api.put(CHAOS, {"enable": True})).status == 422
        assert (await api.post(f"{CHAOS}/down", {"seconds": -1})).status == 422
        on = await api.put(CHAOS, {"enabled": True})
        assert on.body["enabled"] is True and on.body["spec"].startswith("seed=0,api=0.05")
        off = await api.put(CHAOS, {"enabled": False, "spec": "bad-day,seed=4"})
        assert off.body["enabled"] is False and off.body["config"]["seed"] == 4
        # A page on another site cannot flip it (the simulator's cross-origin guard).
        foreign = await api.put(CHAOS, {"enabled": True}, headers={"Origin": "http://evil.example"})
        assert foreign.status == 403
        assert (await api.get(CHAOS)).body["enabled"] is False


def test_the_command_line_takes_a_chaos_spec_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "--db", ":memory:", "--chaos", "stormy"]) == 2
    assert "unknown chaos preset 'stormy'" in capsys.readouterr().err
    app = str(EXAMPLES / "echo.py")
    assert main(["dev", app, "--port", "0", "--bot-port", "0", "--chaos", "api=2"]) == 2
    assert "share of calls from 0 to 1" in capsys.readouterr().err
    env = {k: v for k, v in os.environ.items() if k != "IMBOT_SIM_ADMIN_KEY"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    command = [sys.executable, "-m", "imbot", "sim", "--port", "0", "--db", ":memory:"]
    with subprocess.Popen(
        [*command, "--chaos", "bad-day,seed=5"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = [proc.stdout.readline() for _ in range(7)]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=10)
    chaos = [line for line in banner if line.strip().startswith("Chaos mode:")]
    assert chaos, banner
    spec = chaos[0].split(":", 1)[1].split()[0]
    assert Chaos.parse(spec) == Chaos.parse("bad-day,seed=5")
