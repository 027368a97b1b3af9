"""The simulator alone: sends/s through its API and webhook deliveries/s, nothing lost.

Set-up (not timed): the simulator runs in its own process with a SQLite file in a temporary
directory and ``delivery_delay=0``. One iMessage-enabled identity gets a signing key, a
webhook subscription to the stub's fast receiver (``POST /hook``, its own process) and an
identity-scoped API key. ``phones`` humans connect through ``/sim/v1`` (``connect @bench``)
and each sends a first message, so every conversation is open for replies.

Timed: ``n`` concurrent ``POST /api/v1/imessage/messages`` (identity key, round-robin over
the conversations, ``concurrency`` in flight), then a bounded wait for the webhooks. Every
send must come back 201 ``queued`` and produce one signed ``imessage.sent`` (status
``sent``) and one ``imessage.delivered`` (status ``delivered``) webhook.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import procs
from benchmarks.driver import StubControl, percentile
from benchmarks.load import start_stub
from benchmarks.profiling import done_marker

HANDLE = "bench"
EVENT_TYPES = [
    "imessage.received",
    "imessage.reaction_received",
    "imessage.sent",
    "imessage.delivered",
    "imessage.delivery_failed",
]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Sizes of the simulator benchmark."""

    n: int = 3000
    concurrency: int = 32
    phones: int = 300
    webhook_timeout: float = 20.0


def _start_sim(
    db: pathlib.Path, log: pathlib.Path, profile: tuple[str, pathlib.Path] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    argv = [procs.PYTHON, "-m", "benchmarks.sim_server", "--db", str(db)]
    if profile is not None:
        argv += ["--profile", profile[0], "--profile-stem", str(profile[1])]
    proc = procs.spawn(argv, log=log, stdout_pipe=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode().strip()
        if line.startswith("READY "):
            return proc, json.loads(line[6:])
        if not line and proc.poll() is not None:
            break
    procs.stop(proc)
    raise RuntimeError(f"the simulator did not start\n{procs.tail(log)}")


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    key: str | None = None,
    body: Any = None,
    expect: tuple[int, ...] = (200, 201),
) -> Any:
    headers = {"X-API-Key": key} if key else {}
    async with session.request(method, url, json=body, headers=headers) as resp:
        text = await resp.text()
        if resp.status not in expect:
            raise RuntimeError(f"{method} {url} -> {resp.status}: {text[:300]}")
        return json.loads(text) if text else None


async def _set_up(
    session: aiohttp.ClientSession, base: str, admin: str, hook_url: str, phones: int
) -> tuple[str, str, list[str]]:
    """Identity, signing key, subscription, identity key, connected humans; returns
    ``(identity_key, signing_key, conversation_ids)``."""
    api = f"{base}/api/v1"
    identity = await _call(
        session,
        "POST",
        f"{api}/identities",
        key=admin,
        body={"agent_handle": HANDLE, "imessage_enabled": True},
    )
    key_resp = await _call(
        session, "POST", f"{api}/identities/{HANDLE}/signing-key", key=admin, body={}
    )
    signing_key = key_resp["signing_key"]
    await _call(
        session,
        "POST",
        f"{api}/webhooks/subscriptions",
        key=admin,
        body={"agent_identity_id": identity["id"], "url": hook_url, "event_types": EVENT_TYPES},
    )
    scoped = await _call(session, "POST", f"{base}/sim/v1/identities/{HANDLE}/api-keys", key=admin)
    numbers = [f"+1555{2000000 + i:07d}" for i in range(phones)]
    conversations: list[str] = []
    sem = asyncio.Semaphore(16)

    async def connect(number: str) -> None:
        async with sem:
            phone = f"{base}/sim/v1/phones/{number}"
            await _call(session, "POST", f"{phone}/messages", body={"text": f"connect @{HANDLE}"})
            await _call(session, "POST", f"{phone}/messages", body={"text": "hi", "to": HANDLE})
            timeline = await _call(session, "GET", f"{phone}/timeline")
            for thread in timeline["threads"]:
                if thread["thread"] == HANDLE and thread.get("conversation_id"):
                    conversations.append(thread["conversation_id"])
                    return
            raise RuntimeError(f"{number} has no conversation with @{HANDLE}: {timeline}")

    async with asyncio.TaskGroup() as tg:
        for number in numbers:
            tg.create_task(connect(number))
    return scoped["api_key"], signing_key, conversations


async def _send_all(
    session: aiohttp.ClientSession, base: str, key: str, conversations: list[str], cfg: SimConfig
) -> tuple[list[float], list[float], list[dict[str, Any] | None]]:
    url = f"{base}/api/v1/imessage/messages"
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    bodies = [
        json.dumps(
            {"conversation_id": conversations[i % len(conversations)], "text": f"bench send {i}"}
        ).encode()
        for i in range(cfg.n)
    ]
    send = [0.0] * cfg.n
    done = [0.0] * cfg.n
    rows: list[dict[str, Any] | None] = [None] * cfg.n
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < cfg.n:
            i = next_index
            next_index += 1
            send[i] = time.monotonic()
            async with session.post(url, data=bodies[i], headers=headers) as resp:
                payload = await resp.read()
                if resp.status == 201:
                    rows[i] = json.loads(payload)["message"]
            done[i] = time.monotonic()

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(cfg.concurrency, cfg.n)):
            tg.create_task(worker())
    return send, done, rows


async def run_sim(
    cfg: SimConfig, logdir: pathlib.Path, profile: tuple[str, pathlib.Path] | None = None
) -> dict[str, Any]:
    """Run the simulator benchmark once; return its figures.

    With ``profile=(profiler, stem)`` the simulator's process is profiled during the timed
    sends (see ``benchmarks/profiling.py``).
    """
    stub = start_stub(logdir / "sim-stub.log")
    tmp = tempfile.TemporaryDirectory(prefix="imbot-bench-sim-")
    sim_proc: subprocess.Popen[bytes] | None = None
    try:
        sim_proc, info = _start_sim(pathlib.Path(tmp.name) / "sim.db", logdir / "sim.log", profile)
        base, admin = info["base_url"], info["admin_key"]
        connector = aiohttp.TCPConnector(limit=cfg.concurrency)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            aiohttp.ClientSession() as control_session,
        ):
            control = StubControl(control_session, stub.base_url)
            key, signing_key, conversations = await _set_up(
                session, base, admin, f"{stub.base_url}/hook", cfg.phones
            )
            # The humans' own messages cause imessage.received webhooks; some may still be on
            # their way after the reset: scoring counts only the outbound ones.
            await control.wait("hook", cfg.phones, 10)
            await control.reset(signing_key)
            if profile is not None:
                os.kill(sim_proc.pid, signal.SIGUSR1)
            cpu0 = procs.cpu_seconds(sim_proc.pid)
            send, done, rows = await _send_all(session, base, key, conversations, cfg)
            last_send = max(done)
            expected = 2 * cfg.n
            remaining = cfg.webhook_timeout - (time.monotonic() - last_send)
            await control.wait("outbound", expected, remaining)
            cpu1 = procs.cpu_seconds(sim_proc.pid)
            if profile is not None:
                os.kill(sim_proc.pid, signal.SIGUSR2)
                marker = done_marker(profile[1])
                deadline = time.monotonic() + 60
                while not marker.exists() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            hooks = await control.hooks()
            hwm = procs.peak_rss(sim_proc.pid)
        return _score(cfg, send, done, rows, hooks, cpu1 - cpu0, hwm)
    finally:
        if sim_proc is not None:
            procs.stop(sim_proc)
        procs.stop(stub.proc)
        tmp.cleanup()


def _score(
    cfg: SimConfig,
    send: list[float],
    done: list[float],
    rows: list[dict[str, Any] | None],
    hooks: list[list[Any]],
    cpu: float,
    hwm: int,
) -> dict[str, Any]:
    first = min(send)
    sent_ids = {row["id"] for row in rows if row is not None}
    queued = sum(1 for row in rows if row is not None and row.get("status") == "queued")
    seen: dict[str, set[str]] = {}
    bad_status = unsigned = stray = 0
    last_hook = first
    outbound = 0
    for event_type, message_id, status, _cid, t, sig_ok in hooks:
        if event_type not in ("imessage.sent", "imessage.delivered", "imessage.delivery_failed"):
            continue  # a human's message from the set-up, arriving late
        outbound += 1
        last_hook = max(last_hook, t)
        if not sig_ok:
            unsigned += 1
        if message_id not in sent_ids:
            stray += 1
            continue
        kinds = seen.setdefault(message_id, set())
        if event_type in kinds:
            stray += 1
        kinds.add(event_type)
        want = {"imessage.sent": "sent", "imessage.delivered": "delivered"}.get(event_type)
        if want is None or status != want:
            bad_status += 1
    complete = sum(
        1 for mid in sent_ids if seen.get(mid, set()) >= {"imessage.sent", "imessage.delivered"}
    )
    send_span = max(done) - first
    hook_span = last_hook - first
    latencies = [done[i] - send[i] for i in range(cfg.n) if rows[i] is not None]
    return {
        "n": cfg.n,
        "concurrency": cfg.concurrency,
        "phones": cfg.phones,
        "sends_per_s": len(sent_ids) / send_span if send_span > 0 else 0.0,
        "deliveries_per_s": outbound / hook_span if hook_span > 0 else 0.0,
        "send_p50_ms": percentile(latencies, 0.5) * 1000,
        "send_p99_ms": percentile(latencies, 0.99) * 1000,
        "accepted": len(sent_ids),
        "queued": queued,
        "webhooks": outbound,
        "complete_lifecycles": complete,
        "lost_webhooks": 2 * len(sent_ids) - (outbound - stray),
        "bad_status": bad_status,
        "unsigned": unsigned,
        "stray": stray,
        "cpu_s_per_1k_sends": cpu / cfg.n * 1000,
        "peak_rss_mb": hwm / 1_048_576,
    }
