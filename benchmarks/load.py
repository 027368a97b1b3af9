"""The echo load test: contenders, one measured round, and the A B A B schedule."""

from __future__ import annotations

import pathlib
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import procs
from benchmarks.driver import (
    StubControl,
    conversation_ids,
    drive,
    percentile,
    plan_events,
    sign_all,
)

SECRET = "whsec_benchmark-signing-key"
API_KEY = "ApiKey_benchmark"
WEBHOOK_PATH = "/webhook"


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a contender listening on ``port``."""

    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class Contender:
    """A bot under test: a name and a function building its command line."""

    name: str
    launch: Callable[[int, str], Launch]  # (port, api_base) -> Launch
    note: str = ""


def floor_contender() -> Contender:
    """The hand-written aiohttp floor (``benchmarks/floor.py``)."""

    def launch(port: int, api_base: str) -> Launch:
        return Launch(
            [
                procs.PYTHON,
                "-m",
                "benchmarks.floor",
                "--port",
                str(port),
                "--api-base",
                api_base,
                "--api-key",
                API_KEY,
                "--secret",
                SECRET,
            ],
            {},
        )

    return Contender("floor", launch)


@dataclass(slots=True)
class Stub:
    """The running stub process."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"


def start_stub(log: pathlib.Path) -> Stub:
    """Start ``benchmarks.stub`` in its own process and learn its port."""
    proc = procs.spawn([procs.PYTHON, "-m", "benchmarks.stub"], log=log, stdout_pipe=True)
    try:
        port = procs.read_port_line(proc, timeout=15)
    except Exception:
        procs.stop(proc)
        raise RuntimeError(f"the stub did not start:\n{procs.tail(log)}") from None
    return Stub(proc, port)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """Sizes of the echo load test."""

    n: int = 3000
    concurrency: int = 64
    rounds: int = 9
    warmup: int = 300
    conversations: int = 0  # 0 = n // 10
    straggler_timeout: float = 5.0
    start_timeout: float = 20.0


def _score_replies(
    planned: Sequence[Any], replies: Sequence[Sequence[Any]]
) -> tuple[dict[int, float], int]:
    """Match replies to planned events by text; return ``{index: arrival}`` and wrong count."""
    index = {p.text: i for i, p in enumerate(planned)}
    arrived: dict[int, float] = {}
    wrong = 0
    for cid, text, t, authorized in replies:
        i = index.get(text)
        if i is None or i in arrived or cid != planned[i].conversation_id or not authorized:
            wrong += 1
            continue
        arrived[i] = float(t)
    return arrived, wrong


async def run_round(
    contender: Contender,
    stub: Stub,
    cfg: LoadConfig,
    round_no: int,
    logdir: pathlib.Path,
) -> dict[str, Any]:
    """Start ``contender`` fresh, warm it up, measure one burst of ``cfg.n`` webhooks, stop it."""
    port = procs.free_port()
    launch = contender.launch(port, stub.base_url)
    log = logdir / f"{contender.name}-round{round_no}.log"
    proc = procs.spawn(launch.argv, env=launch.env, log=log)
    try:
        try:
            startup = procs.wait_port(proc, port, cfg.start_timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(
                f"{contender.name} did not start: {exc}\n{procs.tail(log)}"
            ) from None
        return await _measure(contender, proc, port, stub, cfg, round_no, startup, log)
    finally:
        procs.stop(proc)


async def _measure(
    contender: Contender,
    proc: subprocess.Popen[bytes],
    port: int,
    stub: Stub,
    cfg: LoadConfig,
    round_no: int,
    startup: float,
    log: pathlib.Path,
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    conv = conversation_ids(cfg.conversations or max(1, cfg.n // 10), f"r{round_no}")
    tag = f"{contender.name[0]}{round_no}"
    warm = plan_events(cfg.warmup, conv, f"{tag}w")
    timed = plan_events(cfg.n, conv, tag)
    connector = aiohttp.TCPConnector(limit=cfg.concurrency)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        aiohttp.ClientSession() as control_session,
    ):
        control = StubControl(control_session, stub.base_url)
        warm_ok = 0
        if warm:
            await control.reset()
            await drive(session, url, sign_all(warm, SECRET), cfg.concurrency)
            warm_ok = await control.wait("reply", len(warm), cfg.straggler_timeout + 5)
        signed = sign_all(timed, SECRET)
        await control.reset()
        cpu0 = procs.cpu_seconds(proc.pid)
        stub_cpu0 = procs.cpu_seconds(stub.proc.pid)
        busy0 = procs.system_busy_seconds()
        me0 = time.process_time()
        result = await drive(session, url, signed, cfg.concurrency)
        last_ack = max(result.ack) if result.ack else time.monotonic()
        remaining = cfg.straggler_timeout - (time.monotonic() - last_ack)
        await control.wait("reply", cfg.n, remaining)
        cpu1 = procs.cpu_seconds(proc.pid)
        stub_cpu1 = procs.cpu_seconds(stub.proc.pid)
        busy1 = procs.system_busy_seconds()
        me1 = time.process_time()
        window = time.monotonic() - result.first_send
        hwm = procs.peak_rss(proc.pid)
        replies, other = await control.replies()
    if proc.poll() is not None:
        raise RuntimeError(f"{contender.name} died during the round\n{procs.tail(log)}")
    arrived, wrong = _score_replies(timed, replies)
    acked = [result.ack[i] - result.send[i] for i in range(cfg.n) if result.status[i] == 200]
    reply_lat = [t - result.send[i] for i, t in arrived.items()]
    span = (max(arrived.values()) - result.first_send) if arrived else float("nan")
    ack_errors = sum(1 for s in result.status if s != 200)
    return {
        "round": round_no,
        "events_per_s": len(arrived) / span if arrived and span > 0 else 0.0,
        "ack_p50_ms": percentile(acked, 0.50) * 1000,
        "ack_p99_ms": percentile(acked, 0.99) * 1000,
        "reply_p50_ms": percentile(reply_lat, 0.50) * 1000,
        "reply_p99_ms": percentile(reply_lat, 0.99) * 1000,
        "cpu_s_per_1k": (cpu1 - cpu0) / cfg.n * 1000,
        "peak_rss_mb": hwm / 1_048_576,
        "startup_s": startup,
        "lost": cfg.n - len(arrived),
        "wrong": wrong,
        "ack_errors": ack_errors,
        "other_requests": len(other),
        "warmup_replies": warm_ok,
        "driver_cpu_share": result.driver_cpu / result.wall if result.wall else 0.0,
        "stub_cpu_share": (stub_cpu1 - stub_cpu0) / window if window > 0 else 0.0,
        "contender_cpu_share": (cpu1 - cpu0) / window if window > 0 else 0.0,
        # CPU used by processes outside the benchmark during the window: noise, if large.
        "other_cpu_share": max(
            0.0, (busy1 - busy0) - (cpu1 - cpu0) - (stub_cpu1 - stub_cpu0) - (me1 - me0)
        )
        / window
        if window > 0
        else 0.0,
    }


FIGURES = (
    "events_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "reply_p50_ms",
    "reply_p99_ms",
    "cpu_s_per_1k",
    "peak_rss_mb",
    "startup_s",
)
SUMS = ("lost", "wrong", "ack_errors", "other_requests")


SHARES = ("driver_cpu_share", "stub_cpu_share", "contender_cpu_share", "other_cpu_share")


def summarize(
    rounds: Sequence[dict[str, Any]],
    *,
    medians: Sequence[str] = (*FIGURES, *SHARES),
    sums: Sequence[str] = SUMS,
) -> dict[str, Any]:
    """Median of each figure over rounds; totals of the error counts."""
    out: dict[str, Any] = {"rounds": len(rounds)}
    for key in medians:
        out[key] = statistics.median(r[key] for r in rounds) if rounds else float("nan")
    for key in sums:
        out[key] = sum(r[key] for r in rounds)
    return out


async def run_load(
    contenders: Sequence[Contender],
    cfg: LoadConfig,
    logdir: pathlib.Path,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Alternate the contenders (A B A B ...) for ``cfg.rounds`` rounds against one stub."""
    stub = start_stub(logdir / "stub.log")
    per: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
    errors: dict[str, str] = {}
    try:
        for round_no in range(1, cfg.rounds + 1):
            for contender in contenders:
                if contender.name in errors:
                    continue
                try:
                    r = await run_round(contender, stub, cfg, round_no, logdir)
                except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError) as exc:
                    errors[contender.name] = str(exc)
                    progress(f"  {contender.name}: FAILED: {str(exc).splitlines()[0]}")
                    continue
                per[contender.name].append(r)
                progress(
                    f"  round {round_no} {contender.name:6s} {r['events_per_s']:8.0f} ev/s"
                    f"  ack p99 {r['ack_p99_ms']:6.1f} ms  cpu/1k {r['cpu_s_per_1k']:.3f} s"
                    f"  lost {r['lost']} wrong {r['wrong']}"
                )
    finally:
        procs.stop(stub.proc)
    return {
        "config": {
            "n": cfg.n,
            "concurrency": cfg.concurrency,
            "rounds": cfg.rounds,
            "warmup": cfg.warmup,
            "conversations": cfg.conversations or max(1, cfg.n // 10),
        },
        "contenders": {
            name: {"summary": summarize(rs), "rounds": rs, "error": errors.get(name)}
            for name, rs in per.items()
        },
    }
