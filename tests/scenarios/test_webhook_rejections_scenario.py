"""Refused webhooks: bad signature, stale timestamp, oversized and malformed bodies."""

from __future__ import annotations

import json
import time

import aiohttp
import anyio

from imbot import AnyEvent, Bot, Context
from imbot.testing import serving, simulated
from imbot.webhooks import sign

HUMAN = "+15555550125"


def envelope(event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "event_type": "imessage.received",
            "timestamp": "2026-06-09T14:30:59Z",
            "data": {
                "message": {
                    "id": "5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11",
                    "conversation_id": "0e7d2c91-6a44-4b0e-8f3e-91c2d5a7b602",
                    "direction": "inbound",
                    "remote_number": HUMAN,
                    "content": "should never be handled",
                    "created_at": "2026-06-09T14:30:58Z",
                    "updated_at": "2026-06-09T14:30:58Z",
                },
                "reaction": None,
                "contacts": [],
                "agent_identities": [],
            },
        }
    ).encode()


async def test_refused_requests_get_the_right_status_and_run_no_handler() -> None:
    with anyio.fail_after(30):
        async with simulated("guarded") as agent:
            bot = Bot(client=agent.client, signing_key=agent.signing_key, max_body_size=4096)
            handled: list[str] = []

            @bot.on_event("*")
            async def anything(ctx: Context[AnyEvent]) -> None:
                handled.append(ctx.event.id)

            async with serving(agent, bot) as port, aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/webhook"

                async def post(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
                    async with http.post(url, data=body, headers=headers) as response:
                        return response.status, await response.text()

                body = envelope("evt_bad_signature")
                assert await post(body, sign(body, "whsec_not_the_key")) == (
                    401,
                    '{"error":"invalid signature"}',
                )
                assert (await post(body, {}))[0] == 401  # no signature headers at all

                body = envelope("evt_stale")
                stale = sign(body, agent.signing_key, timestamp=int(time.time()) - 3600)
                assert (await post(body, stale))[0] == 401

                body = envelope("evt_big") + b" " * 8192
                assert (await post(body, sign(body, agent.signing_key)))[0] == 413

                body = b'{"id": "evt_broken", "event_type": '
                assert await post(body, sign(body, agent.signing_key)) == (
                    400,
                    '{"error":"malformed event"}',
                )
                body = b'{"id": "evt_no_data", "event_type": "imessage.received"}'
                assert (await post(body, sign(body, agent.signing_key)))[0] == 400

                # The same signed body with a valid signature is accepted: the checks above
                # failed for their own reasons.
                body = envelope("evt_good")
                assert (await post(body, sign(body, agent.signing_key)))[0] == 200
            assert handled == ["evt_good"]
