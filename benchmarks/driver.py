"""The load driver: builds and signs webhooks, fires them at a contender, reads the stub.

Everything that costs CPU happens before the timed window: bodies are built and signed with
``imbot.webhooks.sign`` right before each round (so timestamps are fresh). In the window the
driver only posts pre-built bytes through one ``aiohttp.ClientSession`` whose connector
limit equals the concurrency, and notes ``time.monotonic()`` around each request.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from imbot.webhooks import sign

_MESSAGE_TS = "2026-06-09T14:30:58Z"


@dataclass(frozen=True, slots=True)
class Planned:
    """One webhook of a round: its body, where it belongs and the reply it should cause."""

    body: bytes
    conversation_id: str
    text: str


def conversation_ids(count: int, seed: str) -> list[str]:
    """``count`` stable UUID-shaped conversation ids."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"imbot-bench/{seed}/{i}")) for i in range(count)]


def plan_events(n: int, conversations: Sequence[str], tag: str) -> list[Planned]:
    """``n`` distinct ``imessage.received`` envelopes spread round-robin over ``conversations``."""
    out: list[Planned] = []
    for i in range(n):
        cid = conversations[i % len(conversations)]
        text = f"{tag}-{i} can you move my booking to Friday?"
        envelope: dict[str, Any] = {
            "id": f"evt_{tag}_{i:07d}_{uuid.uuid4().hex[:12]}",
            "event_type": "imessage.received",
            "timestamp": _MESSAGE_TS,
            "data": {
                "message": {
                    "id": str(uuid.uuid4()),
                    "conversation_id": cid,
                    "assignment_id": "c41f9a20-1d7b-47a5-b8e9-33a0f6d2e713",
                    "direction": "inbound",
                    "remote_number": f"+1555{(i % len(conversations)) + 1000000:07d}",
                    "content": text,
                    "message_type": "message",
                    "service": "imessage",
                    "send_style": None,
                    "media": None,
                    "was_downgraded": False,
                    "status": "received",
                    "error_code": None,
                    "error_message": None,
                    "error_reason": None,
                    "error_detail": None,
                    "is_read": False,
                    "recipients": None,
                    "reactions": None,
                    "created_at": _MESSAGE_TS,
                    "updated_at": _MESSAGE_TS,
                },
                "reaction": None,
                "contacts": [],
                "agent_identities": [],
            },
        }
        out.append(Planned(json.dumps(envelope).encode(), cid, text))
    return out


def sign_all(planned: Sequence[Planned], secret: str) -> list[tuple[bytes, dict[str, str]]]:
    """Sign every body now; each gets its own request id and the current timestamp."""
    signed = []
    for p in planned:
        headers = sign(p.body, secret)
        headers["Content-Type"] = "application/json"
        signed.append((p.body, headers))
    return signed


@dataclass(slots=True)
class DriveResult:
    """Per-request timings of one burst (monotonic seconds) and the driver's own CPU."""

    send: list[float]
    ack: list[float]
    status: list[int]
    errors: int = 0
    driver_cpu: float = 0.0
    wall: float = 0.0
    first_send: float = field(default=0.0)


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    signed: Sequence[tuple[bytes, dict[str, str]]],
    concurrency: int,
) -> DriveResult:
    """POST every signed body to ``url`` with ``concurrency`` requests in flight."""
    n = len(signed)
    send = [0.0] * n
    ack = [0.0] * n
    status = [0] * n
    errors = 0
    next_index = 0
    monotonic = time.monotonic

    async def worker() -> None:
        nonlocal next_index, errors
        while next_index < n:
            i = next_index
            next_index += 1
            body, headers = signed[i]
            send[i] = monotonic()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status[i] = resp.status
            except (aiohttp.ClientError, OSError):
                errors += 1
            ack[i] = monotonic()

    gc.collect()
    gc.disable()
    cpu0 = time.process_time()
    t0 = monotonic()
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(concurrency, n)):
                tg.create_task(worker())
    finally:
        gc.enable()
    return DriveResult(
        send,
        ack,
        status,
        errors,
        driver_cpu=time.process_time() - cpu0,
        wall=monotonic() - t0,
        first_send=min(send) if n else t0,
    )


class StubControl:
    """The driver's handle on the stub process (``/_bench/*``)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def reset(self, secret: str | None = None) -> None:
        """Forget all records; optionally set the key ``/hook`` verifies with."""
        body = {"secret": secret} if secret is not None else {}
        async with self.session.post(f"{self.base_url}/_bench/reset", json=body) as resp:
            resp.raise_for_status()

    async def wait(self, kind: str, count: int, timeout: float) -> int:
        """Long-poll until the stub holds ``count`` records of ``kind``; return the count."""
        params = {"kind": kind, "count": str(count), "timeout": f"{max(timeout, 0.0):.3f}"}
        client_timeout = aiohttp.ClientTimeout(total=timeout + 10)
        async with self.session.get(
            f"{self.base_url}/_bench/wait", params=params, timeout=client_timeout
        ) as resp:
            return int((await resp.json())["count"])

    async def replies(self) -> tuple[list[list[Any]], list[list[str]]]:
        """Every recorded reply ``[conversation_id, text, t, authorized]`` and other requests."""
        async with self.session.get(f"{self.base_url}/_bench/replies") as resp:
            data = await resp.json()
        return data["replies"], data["other"]

    async def hooks(self) -> list[list[Any]]:
        """Every webhook ``[event_type, message_id, status, conversation_id, t, signature_ok]``."""
        async with self.session.get(f"{self.base_url}/_bench/hooks") as resp:
            return list((await resp.json())["hooks"])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
