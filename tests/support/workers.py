"""Several bot processes on one store, and Inkbox at its most awkward in front of them.

The scale-out tests (``tests/scaleout``) run real ``imbot run`` processes (each on its own
port, so that the test chooses which worker a delivery reaches) sharing one Redis, and
check what a human would see. The parts:

* ``COUNTER_APP``: the bot under test. Each ``seq N`` message bumps a counter in
  ``ctx.state`` and replies ``N n=<counter> pid=<process>``; ``total`` replies the counter
  without bumping it; ``ask`` asks for a name with ``ctx.ask`` and greets the answer.
* ``ApiStandIn``: the Inkbox API the replies go to (aiohttp on 127.0.0.1). Like the real
  API it honours ``Idempotency-Key``: a send repeated with a key it has seen is answered
  with the first answer and is not a new message. It records every request, so a test can
  tell a message the human would see twice (two keys, one event) from a harmless replay
  (one key, twice).
* ``Worker`` / ``Cluster``: the processes, started, killed with SIGKILL, restarted.
* ``Inkbox``: the sender. A conversation's events go in order (event i+1 only once event i
  was acknowledged by some worker), but every event is delivered to two workers chosen at
  random, each at a random moment, so a copy may arrive after the next event; a delivery
  answered 503 or refused is tried again, as Inkbox does.
* ``verdict``: lost, duplicated, out of order, counters, from the stand-in's records.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from imbot.webhooks import sign
from tests.support import REPO_ROOT, free_port, wait_listening

__all__ = [
    "API_KEY",
    "COUNTER_APP",
    "SECRET",
    "ApiStandIn",
    "Cluster",
    "Inkbox",
    "Outcome",
    "Plan",
    "Progress",
    "Verdict",
    "Worker",
    "envelope",
    "median",
    "percentile",
    "run_plan",
    "running",
    "totals",
    "verdict",
]

SECRET = "whsec_scaleout_test"
"""The webhook signing key every worker verifies with."""

API_KEY = "ApiKey_scaleout"
"""The API key the workers send with."""

COUNTER_APP = """\
import asyncio
import os

from imbot import Bot, Text

bot = Bot()
PID = os.getpid()
# Seconds each `seq` handler works before it replies (COUNTER_DELAY): a handler that takes
# a while, so that a worker killed at any moment has events under way.
DELAY = float(os.environ.get("COUNTER_DELAY", "0"))


@bot.on_message(Text("total"))
async def total(ctx):
    await ctx.reply(f"total n={ctx.state.get('count', 0)} pid={PID}")


@bot.on_message(Text("ask"))
async def ask(ctx):
    answer = await ctx.ask(f"name? pid={PID}", timeout=60)
    await ctx.reply(f"hello {answer.text} asked-by={PID} pid={os.getpid()}")


@bot.on_message()
async def count(ctx):
    seq = int(ctx.text.split()[1])
    n = ctx.state.get("count", 0) + 1
    ctx.state["count"] = n
    if DELAY:
        await asyncio.sleep(DELAY)
    await ctx.reply(f"{seq} n={n} pid={PID}")
"""

_TS = "2026-06-09T14:30:58Z"
_REPLY = re.compile(r"^(?P<seq>\d+) n=(?P<n>\d+) pid=(?P<pid>\d+)$")
_TOTAL = re.compile(r"^total n=(?P<n>\d+) pid=(?P<pid>\d+)$")


def envelope(conversation_id: str, text: str, *, sender: str = "+15555550142") -> bytes:
    """A fresh ``imessage.received`` envelope (its own event and message ids)."""
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "event_type": "imessage.received",
            "timestamp": _TS,
            "data": {
                "message": {
                    "id": str(uuid.uuid4()),
                    "conversation_id": conversation_id,
                    "direction": "inbound",
                    "remote_number": sender,
                    "content": text,
                    "created_at": _TS,
                    "updated_at": _TS,
                },
                "reaction": None,
                "contacts": [],
                "agent_identities": [],
            },
        }
    ).encode()


def _message_row(n: int, conversation_id: str, text: str) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "conversation_id": conversation_id,
        "direction": "outbound",
        "remote_number": "+15555550142",
        "content": text,
        "status": "queued",
        "created_at": _TS,
        "updated_at": _TS,
    }


@dataclass(frozen=True, slots=True)
class Send:
    """One ``POST /messages`` the stand-in received."""

    key: str | None
    conversation_id: str
    text: str
    at: float


class ApiStandIn:
    """The Inkbox API's send endpoint, with idempotency keys, on 127.0.0.1.

    Attributes:
        sends: every send request, in arrival order (replays included).
        messages: the first send of each key (what the human sees), in arrival order.
        url: the base URL, once started.
    """

    def __init__(self) -> None:
        self.sends: list[Send] = []
        self.messages: list[Send] = []
        self._by_key: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.url = ""

    @property
    def replays(self) -> int:
        """Sends that repeated a key already answered (a handler that ran again)."""
        return len(self.sends) - len(self.messages)

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("Idempotency-Key")
        send = Send(key, body["conversation_id"], body.get("text") or "", time.monotonic())
        self.sends.append(send)
        if key is not None and key in self._by_key:
            return web.json_response(self._by_key[key], status=201)
        row = {"message": _message_row(len(self.messages) + 1, send.conversation_id, send.text)}
        if key is not None:
            self._by_key[key] = row
        self.messages.append(send)
        self._changed.set()
        return web.json_response(row, status=201)

    async def _triage(self, _request: web.Request) -> web.Response:
        return web.json_response({"number": "+15550100000", "connect_command": "connect @x"})

    async def _other(self, request: web.Request) -> web.Response:
        return web.json_response({"detail": f"not in the stand-in: {request.path}"}, status=404)

    async def start(self) -> None:
        """Listen on a free port."""
        app = web.Application()
        app.router.add_post("/api/v1/imessage/messages", self._send)
        app.router.add_get("/api/v1/imessage/triage-number", self._triage)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked whenever a new message arrives)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return True


@dataclass
class Worker:
    """One ``imbot run`` process of the cluster, on its own port."""

    index: int
    port: int
    log_path: Path
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The webhook URL."""
        return f"http://127.0.0.1:{self.port}/webhook"

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (again) and wait until it listens."""
        with self.log_path.open("ab") as sink:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )
        self.pids.append(self.process.pid)
        wait_listening(self.port, self.process, self.log_path)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, whatever it was doing."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log(self) -> str:
        """What the process wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """``count`` workers running ``COUNTER_APP`` on one store, replying to ``api_url``.

    ``handler_delay`` is how long each ``seq`` handler works before replying.
    """

    def __init__(
        self,
        folder: Path,
        *,
        count: int,
        store: str | None,
        api_url: str,
        handler_delay: float = 0.0,
    ) -> None:
        app = folder / "counter_bot.py"
        app.write_text(COUNTER_APP)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INKBOX_", "IMBOT_"))}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            INKBOX_API_KEY=API_KEY,
            INKBOX_BASE_URL=api_url,
            IMBOT_SIGNING_KEY=SECRET,
            IMBOT_LOG_FORMAT="json",
            IMBOT_LOG_LEVEL="WARNING",
            COUNTER_DELAY=str(handler_delay),
        )
        self.workers = []
        for index in range(count):
            port = free_port()
            command = [sys.executable, "-m", "imbot", "run", str(app), "--port", str(port)]
            command.append("--no-api-check")
            if store is not None:
                command += ["--store", store]
            log = folder / f"worker-{index}.log"
            self.workers.append(Worker(index, port, log, command, env))

    def start(self) -> None:
        """Start every worker."""
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        """Stop every worker still running."""
        for worker in self.workers:
            worker.stop()

    def logs(self) -> str:
        """Every worker's log, for a failure message."""
        return "\n".join(f"--- worker {w.index}\n{w.log()[-4000:]}" for w in self.workers)


@contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """Start ``cluster``; stop it on exit."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True, slots=True)
class Plan:
    """What Inkbox sends: ``events`` messages spread evenly over ``conversations``.

    Attributes:
        conversations: how many conversations.
        events: how many ``seq`` messages in all.
        copies: how many workers each event is delivered to.
        first_jitter: the first copy leaves within this many seconds.
        late_jitter: every other copy leaves within this many seconds (it may arrive after
            the conversation's next event).
        seed: the random seed.
    """

    conversations: int
    events: int
    copies: int = 2
    first_jitter: float = 0.01
    late_jitter: float = 0.3
    seed: int = 11

    def conversation_ids(self) -> list[str]:
        """Stable conversation ids."""
        return [
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"scaleout/{self.seed}/{i}"))
            for i in range(self.conversations)
        ]

    def per_conversation(self) -> list[int]:
        """How many events each conversation gets."""
        base, extra = divmod(self.events, self.conversations)
        return [base + (1 if i < extra else 0) for i in range(self.conversations)]


@dataclass
class Progress:
    """What the sender saw while it sent."""

    acked: int = 0
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    refused: int = 0  # connections refused or cut (a dead worker)
    abandoned: int = 0  # copies given up on (their twin was acknowledged)
    ack_latency: list[float] = field(default_factory=list)
    first_ack: dict[tuple[str, int], tuple[float, int]] = field(default_factory=dict)


class Inkbox:
    """Sends a plan's events to the workers the way the issue describes Inkbox sending them.

    Args:
        workers: the targets.
        session: the HTTP session to post with.
        plan: what to send.
        give_up_refused: seconds a copy keeps retrying a worker that refuses connections.
    """

    def __init__(
        self,
        workers: Sequence[Worker],
        session: aiohttp.ClientSession,
        plan: Plan,
        *,
        give_up_refused: float = 5.0,
    ) -> None:
        self.workers = list(workers)
        self.session = session
        self.plan = plan
        self.random = random.Random(plan.seed)
        self.progress = Progress()
        self.give_up_refused = give_up_refused
        self._late: set[asyncio.Task[bool]] = set()
        self.on_ack: Callable[[int], None] | None = None

    async def post(self, worker: Worker, body: bytes) -> int | None:
        """POST ``body`` once, freshly signed; the status, or ``None`` if refused or cut."""
        headers = {"Content-Type": "application/json", **sign(body, SECRET)}
        try:
            async with self.session.post(worker.url, data=body, headers=headers) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    async def deliver(self, worker: Worker, body: bytes, delay: float) -> bool:
        """Deliver one copy after ``delay``, trying again until a worker answers 200."""
        await asyncio.sleep(delay)
        refused_since: float | None = None
        backoff = 0.1
        while True:
            sent = time.monotonic()
            status = await self.post(worker, body)
            if status == 200:
                self.progress.ack_latency.append(time.monotonic() - sent)
                return True
            if status is None:
                self.progress.refused += 1
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since > self.give_up_refused:
                    self.progress.abandoned += 1
                    return False
            else:
                self.progress.statuses[status] += 1
                refused_since = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def send_event(self, body: bytes, key: tuple[str, int]) -> None:
        """Deliver one event to ``copies`` random workers; return once one acknowledged it."""
        targets = self.random.sample(self.workers, self.plan.copies)
        delays = [self.random.uniform(0, self.plan.first_jitter)]
        delays += [self.random.uniform(0, self.plan.late_jitter) for _ in targets[1:]]
        copies = [
            asyncio.ensure_future(self.deliver(w, body, d))
            for w, d in zip(targets, delays, strict=True)
        ]
        pending = set(copies)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner = next((c for c in done if c.result()), None)
            if winner is not None:
                worker = targets[copies.index(winner)]
                self.progress.first_ack[key] = (time.monotonic(), worker.index)
                self.progress.acked += 1
                self._late.update(pending)  # the other copies arrive when they arrive
                if self.on_ack is not None:
                    self.on_ack(self.progress.acked)
                return
        raise AssertionError(f"no worker acknowledged event {key}")

    async def conversation(self, conversation_id: str, count: int) -> None:
        """Send a conversation's ``seq`` events, each once the previous was acknowledged."""
        for seq in range(count):
            await self.send_event(envelope(conversation_id, f"seq {seq}"), (conversation_id, seq))

    async def run(self) -> float:
        """Send the whole plan, conversations concurrently; the seconds it took."""
        started = time.monotonic()
        ids = self.plan.conversation_ids()
        await asyncio.gather(
            *(
                self.conversation(c, n)
                for c, n in zip(ids, self.plan.per_conversation(), strict=True)
            )
        )
        return time.monotonic() - started

    async def settle(self, timeout: float) -> None:
        """Wait for the late copies (they must all be answered, or given up on)."""
        if self._late:
            await asyncio.wait(self._late, timeout=timeout)
        for task in self._late:
            task.cancel()


@dataclass
class Verdict:
    """What the human would have seen, per the stand-in."""

    events: int
    replied: int
    lost: list[tuple[str, int]]
    duplicated: list[tuple[str, int]]
    out_of_order: list[str]
    wrong_counter: list[tuple[str, int, int]]
    replays: int
    handled_by: dict[int, int]

    @property
    def ok(self) -> bool:
        """No loss, no duplicate, every conversation in order with exact counters."""
        return not (self.lost or self.duplicated or self.out_of_order or self.wrong_counter)

    def summary(self) -> str:
        """One line for a failure message or a report."""
        return (
            f"{self.replied}/{self.events} replied, lost {len(self.lost)}, duplicated "
            f"{len(self.duplicated)}, out of order {len(self.out_of_order)} conversations, "
            f"wrong counters {len(self.wrong_counter)}, replays {self.replays}, "
            f"handled by pid {dict(self.handled_by)}; first problems: lost {self.lost[:3]} "
            f"dup {self.duplicated[:3]} order {self.out_of_order[:2]} "
            f"counter {self.wrong_counter[:3]}"
        )


def verdict(plan: Plan, api: ApiStandIn) -> Verdict:
    """Judge the run from the messages the stand-in kept (first send of each key)."""
    seen: dict[str, list[int]] = defaultdict(list)
    wrong: list[tuple[str, int, int]] = []
    handled_by: dict[int, int] = defaultdict(int)
    for message in api.messages:
        found = _REPLY.match(message.text)
        if found is None:
            continue
        seq, n = int(found["seq"]), int(found["n"])
        seen[message.conversation_id].append(seq)
        handled_by[int(found["pid"])] += 1
        if n != seq + 1:
            wrong.append((message.conversation_id, seq, n))
    lost, duplicated, disorder = [], [], []
    for cid, count in zip(plan.conversation_ids(), plan.per_conversation(), strict=True):
        got = seen.get(cid, [])
        counts: dict[int, int] = defaultdict(int)
        for seq in got:
            counts[seq] += 1
        lost += [(cid, s) for s in range(count) if counts[s] == 0]
        duplicated += [(cid, s) for s, c in counts.items() if c > 1]
        firsts = list(dict.fromkeys(got))
        if firsts != sorted(firsts):
            disorder.append(cid)
    return Verdict(
        events=plan.events,
        replied=sum(len(set(v)) for v in seen.values()),
        lost=lost,
        duplicated=duplicated,
        out_of_order=disorder,
        wrong_counter=wrong,
        replays=api.replays,
        handled_by=dict(handled_by),
    )


def totals(api: ApiStandIn) -> dict[str, int]:
    """The counter each ``total`` probe reported, by conversation (the last one wins)."""
    found: dict[str, int] = {}
    for message in api.messages:
        match = _TOTAL.match(message.text)
        if match is not None:
            found[message.conversation_id] = int(match["n"])
    return found


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in 0..1 (NaN for none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    """The median (NaN for none)."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Outcome:
    """One run of a plan: the verdict and the figures around it."""

    verdict: Verdict
    totals: dict[str, int]
    expected_totals: dict[str, int]
    seconds: float
    progress: Progress
    api: ApiStandIn
    fault_at: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def wrong_totals(self) -> dict[str, tuple[int | None, int]]:
        """Conversations whose ``total`` probe did not report their event count."""
        return {
            cid: (self.totals.get(cid), want)
            for cid, want in self.expected_totals.items()
            if self.totals.get(cid) != want
        }

    def report(self) -> str:
        """The figures, one line."""
        acks = self.progress.ack_latency
        return (
            f"{self.verdict.summary()}; totals wrong {len(self.wrong_totals)}; "
            f"{self.verdict.events / self.seconds:.0f} events/s over {self.seconds:.1f} s; "
            f"ack p50 {median(acks) * 1000:.1f} ms p99 {percentile(acks, 0.99) * 1000:.1f} ms; "
            f"non-200 answers {dict(self.progress.statuses)}, refused {self.progress.refused}, "
            f"copies given up {self.progress.abandoned}; {self.notes}"
        )


async def run_plan(
    plan: Plan,
    cluster: Cluster,
    api: ApiStandIn,
    *,
    fault: Callable[[], Any] | None = None,
    fault_after: int | None = None,
    reply_timeout: float = 120.0,
    settle: float = 1.0,
) -> Outcome:
    """Send ``plan`` to ``cluster``, wait for every reply, probe every counter; judge.

    Args:
        plan: what to send.
        cluster: the running workers.
        api: the stand-in the workers reply to.
        fault: a blocking function (kill a worker, stop Redis...) run in a thread once
            ``fault_after`` events were acknowledged; the sending goes on meanwhile.
        fault_after: when to run ``fault``.
        reply_timeout: seconds to wait for the replies once everything was sent.
        settle: seconds to wait after the last reply for late copies and stray replays.
    """
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    fault_task: list[asyncio.Task[Any]] = []
    fault_at: list[float] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        inkbox = Inkbox(cluster.workers, session, plan)
        if fault is not None and fault_after is not None:

            def trigger(acked: int) -> None:
                if acked == fault_after and not fault_task:
                    fault_at.append(time.monotonic())
                    fault_task.append(asyncio.ensure_future(asyncio.to_thread(fault)))

            inkbox.on_ack = trigger
        seconds = await inkbox.run()
        if fault_task:
            await fault_task[0]
        ids = plan.conversation_ids()
        wanted = {
            (cid, seq)
            for cid, count in zip(ids, plan.per_conversation(), strict=True)
            for seq in range(count)
        }

        def all_replied() -> bool:
            return len(verdict(plan, api).lost) == 0

        await api.wait(all_replied, reply_timeout)
        await inkbox.settle(timeout=reply_timeout)
        await asyncio.sleep(settle)
        # One `total` per conversation, to a worker that is up: the counter as stored.
        alive = [w for w in cluster.workers if w.alive]
        rng = random.Random(plan.seed + 1)
        await asyncio.gather(
            *(inkbox.deliver(rng.choice(alive), envelope(cid, "total"), 0) for cid in ids)
        )
        await api.wait(lambda: len(totals(api)) >= len(ids), reply_timeout)
        found = totals(api)
    expected = dict(zip(ids, plan.per_conversation(), strict=True))
    assert len(wanted) == plan.events
    return Outcome(
        verdict=verdict(plan, api),
        totals=found,
        expected_totals=expected,
        seconds=seconds,
        progress=inkbox.progress,
        api=api,
        fault_at=fault_at[0] if fault_at else None,
    )
