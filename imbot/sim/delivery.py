"""Signed webhook delivery: a persisted outbox, per-conversation order, retries with backoff.

Each event is stored once (its envelope, whose ``evt_`` id never changes) and gets one
outbox row per subscription that selects it. Rows are grouped into *lanes*, one per
(subscription, conversation): a lane delivers its rows one at a time in the order they
were written, so a failing delivery holds back the later events of that conversation for
that subscription while every other lane flows. A fixed pool of workers takes ready lanes
from one queue; a single timer task wakes lanes whose retry is due. Outbox rows survive a
restart and are picked up again where they stopped.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from yarl import URL

from imbot.sim.chaos_hooks import FAILED_FIRST, DeliveryChaos, lost
from imbot.sim.core import Core, Effects, new_id
from imbot.sim.envelope import event_data
from imbot.sim.store import Row
from imbot.sim.timers import DueQueue
from imbot.webhooks import sign

__all__ = ["Delivery", "OutboxItem", "mint_signing_key"]

log = logging.getLogger("imbot.sim.delivery")

LaneKey = tuple[str, str]

_RESPONSE_BODY_LIMIT = 2048


def _parsed(url: str) -> URL | str:
    try:
        return URL(url)
    except ValueError:
        return url


def mint_signing_key() -> str:
    """A fresh identity signing key, ``whsec_``-prefixed like Inkbox's."""
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass(slots=True)
class OutboxItem:
    """One pending delivery of one event to one subscription (the body rides along)."""

    seq: int
    event_id: str
    event_type: str
    identity_id: str
    body: bytes
    subscription_id: str
    lane: str
    attempts: int
    next_attempt_at: float

    @property
    def key(self) -> LaneKey:
        """The lane this item waits in."""
        return (self.subscription_id, self.lane)


@dataclass(slots=True)
class _Lane:
    items: deque[OutboxItem] = field(default_factory=deque)
    state: Literal["idle", "ready", "running", "waiting"] = "idle"


@dataclass(frozen=True, slots=True)
class _Sub:
    id: str
    identity_id: str
    url: str
    auth_token: str | None
    event_types: frozenset[str]
    # Parsed once: aiohttp would parse the URL string again on every post. (A string
    # yarl refuses stays a string, and fails in the post like before.)
    target: URL | str


@dataclass(frozen=True, slots=True)
class _Attempt:
    status: int | None
    body: str | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Delivery:
    """Fans events out to subscriptions and delivers them.

    Args:
        core: the simulator's shared state.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._store = core.store
        self._config = core.config
        self._chaos = DeliveryChaos(core)
        self._lanes: dict[LaneKey, _Lane] = {}
        self._timers: DueQueue[LaneKey] = DueQueue()
        self._ready_send: MemoryObjectSendStream[LaneKey]
        self._ready_receive: MemoryObjectReceiveStream[LaneKey]
        # Each lane is in the ready queue at most once, so its size is bounded by the
        # number of lanes, not by the number of events.
        self._ready_send, self._ready_receive = anyio.create_memory_object_stream[LaneKey](math.inf)
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=self._config.webhook_timeout)
        # Caches, so a delivery costs no lookups; `invalidate` clears them on any change.
        # identity id -> [(subscription id, selected event types)]
        self._subscriptions: dict[str, list[tuple[str, frozenset[str]]]] = {}
        self._subs: dict[str, _Sub | None] = {}
        self._keys: dict[str, str | None] = {}
        # Delivery bookkeeping waits here and is written in batches (one commit for
        # many attempts). A crash may lose the last few records; the outbox rows they
        # would have removed are then delivered again, which receivers must tolerate.
        self._records: list[dict[str, Any]] = []
        self._done: list[int] = []
        self._retries: list[tuple[int, float, int]] = []
        self._dirty = anyio.Event()

    # Fan-out (inside the caller's transaction)

    def invalidate(self, identity_id: str) -> None:
        """Forget what is cached about an identity's subscriptions and signing key."""
        self._subscriptions.pop(identity_id, None)
        self._keys.pop(identity_id, None)
        self._subs.clear()

    def _selecting(self, identity_id: str, event_type: str) -> list[str]:
        subs = self._subscriptions.get(identity_id)
        if subs is None:
            rows = self._store.all(
                "SELECT id, event_types FROM subscriptions "
                "WHERE identity_id = ? AND status = 'active' ORDER BY seq",
                (identity_id,),
            )
            subs = [(row["id"], frozenset(json.loads(row["event_types"]))) for row in rows]
            self._subscriptions[identity_id] = subs
        return [sub_id for sub_id, types in subs if event_type in types]

    def fanout(
        self,
        fx: Effects,
        identity: Row,
        event_type: str,
        conversation_id: str | None,
        data: dict[str, Any],
    ) -> None:
        """Record an event for every active subscription of ``identity`` that selects it.

        Nothing is recorded while the identity has iMessage turned off (Inkbox pauses
        fan-out then) or when no subscription selects the event.
        """
        if not identity["imessage_enabled"]:
            return
        sub_ids = self._selecting(identity["id"], event_type)
        if not sub_ids:
            return
        if identity["signing_key"] is None:
            # §16 #20: sign with an auto-minted key rather than send unsigned.
            self._keys.pop(identity["id"], None)
            self._store.update(
                "identities",
                identity["id"],
                {
                    "signing_key": mint_signing_key(),
                    "signing_key_created_at": self._core.clock.now(),
                },
            )
            self._core.identity_changed(identity["id"])
        created_at = self._core.clock.now()
        event_id = "evt_" + secrets.token_hex(12)
        envelope = {
            "id": event_id,
            "event_type": event_type,
            "timestamp": created_at,
            "data": event_data(self._core, data),
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
        raw = body.encode()
        self._store.insert(
            "events",
            {
                "id": event_id,
                "event_type": event_type,
                "identity_id": identity["id"],
                "conversation_id": conversation_id,
                "body": body,
                "created_at": created_at,
            },
        )
        now = time.time()
        lane = conversation_id or ""
        for sub_id in sub_ids:
            seq = self._store.insert(
                "outbox",
                {
                    "event_id": event_id,
                    "subscription_id": sub_id,
                    "lane": lane,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": created_at,
                },
            )
            fx.outbox.append(
                OutboxItem(seq, event_id, event_type, identity["id"], raw, sub_id, lane, 0, now)
            )

    # Lanes

    def enqueue(self, items: list[OutboxItem]) -> None:
        """Append committed outbox items to their lanes and wake idle lanes."""
        for item in items:
            lane = self._lanes.get(item.key)
            if lane is None:
                lane = self._lanes[item.key] = _Lane()
            lane.items.append(item)
            if lane.state == "idle":
                lane.state = "ready"
                self._ready_send.send_nowait(item.key)

    def resume(self) -> None:
        """Rebuild the lanes from the stored outbox (after a restart)."""
        rows = self._store.all(
            "SELECT o.*, e.event_type, e.identity_id, e.body FROM outbox o "
            "JOIN events e ON e.id = o.event_id ORDER BY o.seq"
        )
        now = time.time()
        for row in rows:
            item = OutboxItem(
                row["seq"],
                row["event_id"],
                row["event_type"],
                row["identity_id"],
                row["body"].encode(),
                row["subscription_id"],
                row["lane"],
                row["attempts"],
                row["next_attempt_at"],
            )
            lane = self._lanes.setdefault(item.key, _Lane())
            lane.items.append(item)
        for key, lane in self._lanes.items():
            head = lane.items[0]
            if head.next_attempt_at > now:
                lane.state = "waiting"
                self._timers.push(head.next_attempt_at, key)
            else:
                lane.state = "ready"
                self._ready_send.send_nowait(key)

    def pending(self) -> int:
        """How many deliveries are still waiting (tests poll this to drain)."""
        return sum(len(lane.items) for lane in self._lanes.values())

    def flush(self) -> None:
        """Write the buffered delivery records and outbox changes in one transaction."""
        if not (self._records or self._done or self._retries):
            return
        records, done, retries = self._records, self._done, self._retries
        self._records, self._done, self._retries = [], [], []
        with self._store.transaction():
            for record in records:
                self._store.insert("deliveries", record)
            for seq in done:
                self._store.run("DELETE FROM outbox WHERE seq = ?", (seq,))
            for seq, due, attempts in retries:
                self._store.run(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ? WHERE seq = ?",
                    (attempts, due, seq),
                )

    def _mark_dirty(self) -> None:
        self._dirty.set()

    async def _flusher(self) -> None:
        while True:
            await self._dirty.wait()
            # Let a few more attempts finish so they share the commit.
            await anyio.sleep(0.01)
            self._dirty = anyio.Event()
            self.flush()

    def close(self) -> None:
        """Release the ready queue (after the workers stopped)."""
        self._ready_send.close()
        self._ready_receive.close()

    # Workers

    async def run(self) -> None:
        """Deliver until cancelled: the worker pool plus the retry timer."""
        connector = aiohttp.TCPConnector(limit=max(self._config.webhook_workers * 2, 10))
        session = aiohttp.ClientSession(connector=connector)
        self._session = session
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._timer)
                tg.start_soon(self._flusher)
                for _ in range(self._config.webhook_workers):
                    tg.start_soon(self._worker)
        finally:
            self._session = None
            self.flush()
            # Shielded: the run is usually ending by cancellation, and the pool's
            # sockets must still be closed.
            with anyio.CancelScope(shield=True):
                await session.close()

    async def _timer(self) -> None:
        while True:
            for key in await self._timers.take():
                lane = self._lanes.get(key)
                if lane is not None and lane.state == "waiting":
                    lane.state = "ready"
                    self._ready_send.send_nowait(key)

    async def _worker(self) -> None:
        async for key in self._ready_receive:
            lane = self._lanes[key]
            lane.state = "running"
            item = lane.items[0]
            finished = await self._deliver(item)
            if not finished:
                lane.state = "waiting"
                self._timers.push(item.next_attempt_at, key)
                continue
            lane.items.popleft()
            if lane.items:
                lane.state = "ready"
                self._ready_send.send_nowait(key)
            else:
                del self._lanes[key]

    async def _deliver(self, item: OutboxItem) -> bool:
        """Make one attempt; return whether the item is done (delivered or given up)."""
        sub = self._sub(item.subscription_id)
        if sub is None or item.event_type not in sub.event_types:
            # The subscription was deleted or no longer selects the event: stop at once.
            self._done.append(item.seq)
            self._mark_dirty()
            return True
        delays = self._config.webhook_retry_delays
        fault = self._chaos.first_attempt(item, can_retry=bool(delays))
        if fault == "late":
            return False  # held back like a retry: the lane waits until next_attempt_at
        item.attempts += 1
        if fault == "failed_first":
            outcome = _Attempt(None, None, FAILED_FIRST, 0)
        else:
            outcome = await self._post(sub, item.identity_id, item.body)
            if fault == "duplicate" and outcome.ok:  # "lost", so delivered again: same evt_ id
                outcome = _Attempt(None, outcome.body, lost(outcome.status), outcome.duration_ms)
        done = outcome.ok or item.attempts > len(delays)
        self._records.append(self._record(sub, item, outcome, attempt=item.attempts, replay=False))
        if done:
            self._done.append(item.seq)
        else:
            item.next_attempt_at = time.time() + delays[item.attempts - 1]
            self._retries.append((item.seq, item.next_attempt_at, item.attempts))
        self._mark_dirty()
        if not outcome.ok:
            log.info(
                "webhook %s to %s failed (attempt %d): %s",
                item.event_id,
                sub.url,
                item.attempts,
                outcome.error or f"HTTP {outcome.status}",
            )
        return done

    def _sub(self, subscription_id: str) -> _Sub | None:
        if subscription_id not in self._subs:
            row = self._store.one(
                "SELECT * FROM subscriptions WHERE id = ? AND status = 'active'",
                (subscription_id,),
            )
            self._subs[subscription_id] = (
                None
                if row is None
                else _Sub(
                    row["id"],
                    row["identity_id"],
                    row["url"],
                    row["auth_token"],
                    frozenset(json.loads(row["event_types"])),
                    _parsed(row["url"]),
                )
            )
        return self._subs[subscription_id]

    def _key(self, identity_id: str) -> str | None:
        if identity_id not in self._keys:
            self._keys[identity_id] = self._store.scalar(
                "SELECT signing_key FROM identities WHERE id = ?", (identity_id,)
            )
        return self._keys[identity_id]

    async def _post(self, sub: _Sub, identity_id: str, body: bytes) -> _Attempt:
        session = self._session
        assert session is not None, "delivery workers are not running"
        key = self._key(identity_id)
        # Fresh request id and timestamp (so a fresh signature) on every attempt.
        headers = sign(body, key) if key else {}
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "imbot-sim-webhooks/1"
        if sub.auth_token:
            headers["Authorization"] = f"Bearer {sub.auth_token}"
        started = time.perf_counter()
        status: int | None = None
        text: str | None = None
        error: str | None = None
        try:
            # No redirects: one would re-send the signed body elsewhere. A 3xx is a failure.
            async with session.post(
                sub.target, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                raw = await resp.content.read(_RESPONSE_BODY_LIMIT)
                text = raw.decode("utf-8", "replace")
        except TimeoutError:
            error = f"timed out after {self._config.webhook_timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if status is not None and 300 <= status < 400:
            error = f"HTTP {status}: webhook deliveries do not follow redirects"
        duration = int((time.perf_counter() - started) * 1000)
        return _Attempt(status, text, error, duration)

    def _record(
        self, sub: _Sub, item: OutboxItem, outcome: _Attempt, *, attempt: int, replay: bool
    ) -> dict[str, Any]:
        return {
            "id": new_id(),
            "subscription_id": sub.id,
            "identity_id": sub.identity_id,
            "event_id": item.event_id,
            "event_type": item.event_type,
            "url": sub.url,
            "response_status": outcome.status,
            "response_body": outcome.body,
            "error_detail": outcome.error,
            "duration_ms": outcome.duration_ms,
            "success": int(outcome.ok),
            "attempt": attempt,
            "is_replay": int(replay),
            "created_at": self._core.clock.now(),
        }

    async def replay(self, subscription_id: str, event: Row) -> str:
        """Send an event again now, outside its lane; return the new delivery id."""
        sub = self._sub(subscription_id)
        assert sub is not None, "replay of an inactive subscription"
        item = OutboxItem(
            0,
            event["id"],
            event["event_type"],
            event["identity_id"],
            event["body"].encode(),
            subscription_id,
            "",
            0,
            time.time(),
        )
        outcome = await self._post(sub, item.identity_id, item.body)
        record = self._record(sub, item, outcome, attempt=1, replay=True)
        self._store.insert("deliveries", record)
        return str(record["id"])
