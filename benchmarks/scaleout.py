"""Scale-out: the echo bot as 1 worker on memory, 1 worker on Redis and 2 workers on Redis.

Each setup is ``imbot run benchmarks/echo_bot.py`` (``--store redis://...`` for Redis,
``--workers 2`` for two processes sharing the port), fed by the echo load test's driver
(signed webhooks, C in flight, spread over N/10 conversations), replying to the same stub.
Setups alternate round by round (A B C A B C), each round on a fresh bot and an emptied
Redis. Per setup, the median over rounds of:

* events/s (replies that arrived, over the time from the first send to the last reply);
* CPU seconds per 1,000 events of the bot's processes (the supervisor and its workers),
  and of the bot plus ``redis-server``;
* ack p50/p99: how long a webhook waits for its ``200`` (the event is in the store then).

The figure the issue sets a target for is the Redis/memory ratio of the bot's CPU per event
(at most 1.5x); the ratio with Redis's own CPU counted is shown beside it.

``python -m benchmarks --only scaleout`` runs it; ``python -m benchmarks.scaleout --quick``
alone too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import procs
from benchmarks.contenders import ECHO_BOT, _cli_base, bot_env
from benchmarks.driver import (
    StubControl,
    conversation_ids,
    drive,
    percentile,
    plan_events,
    sign_all,
)
from benchmarks.load import SECRET, LoadConfig, Stub, _score_replies, start_stub, summarize
from benchmarks.redis_proc import RedisProc, redis_binary
from benchmarks.report import Row, fmt, ratio_of, verdict

__all__ = [
    "CPU_RATIO_MAX",
    "SETUPS",
    "ScaleConfig",
    "Setup",
    "run_scaleout",
    "scaleout_rows",
]

CPU_RATIO_MAX = 1.5
"""The target: the Redis path costs at most this many times the memory path's CPU per event."""


@dataclass(frozen=True, slots=True)
class Setup:
    """One way of running the echo bot."""

    name: str
    store: str  # "memory" or "redis"
    workers: int


SETUPS = (
    Setup("memory-1", "memory", 1),
    Setup("redis-1", "redis", 1),
    Setup("redis-2", "redis", 2),
)


@dataclass(frozen=True, slots=True)
class ScaleConfig(LoadConfig):
    """Sizes of the scale-out benchmark: the load test's, with fewer rounds (three setups
    each) and more patience (several processes start, and Redis)."""

    rounds: int = 3
    straggler_timeout: float = 10.0
    start_timeout: float = 30.0

    @classmethod
    def quick(cls) -> ScaleConfig:
        """Small sizes: one round of 600 webhooks per setup."""
        return cls(n=600, rounds=1, warmup=100)


def _children(pid: int) -> list[int]:
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found = [pid]
    for child in _children(pid):
        found += tree(child)
    return found


def _cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # gone: it no longer counts
            total += procs.cpu_seconds(pid)
    return total


def _peak_rss(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, KeyError):
            total += procs.peak_rss(pid)
    return total


def _launch(setup: Setup, port: int, redis: RedisProc | None) -> list[str]:
    argv = [*_cli_base(), "run", ECHO_BOT, "--host", "127.0.0.1", "--port", str(port)]
    argv.append("--no-api-check")  # the stub answers it, but it is one more round trip
    if setup.store == "redis":
        assert redis is not None
        argv += ["--store", redis.url]
    if setup.workers > 1:
        argv += ["--workers", str(setup.workers)]
    return argv


async def _wait_workers(proc: Any, setup: Setup, log: pathlib.Path, timeout: float) -> None:
    """Wait until every worker listens (the supervisor says so in its log)."""
    if setup.workers == 1:
        return
    deadline = time.monotonic() + timeout
    while "all workers listening" not in log.read_text(errors="replace") or (
        len(_children(proc.pid)) < setup.workers
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{setup.name}: the workers did not start\n{procs.tail(log)}")
        await asyncio.sleep(0.02)


async def run_round(
    setup: Setup,
    stub: Stub,
    redis: RedisProc | None,
    cfg: ScaleConfig,
    round_no: int,
    logdir: pathlib.Path,
) -> dict[str, Any]:
    """Start ``setup`` fresh, warm it up, measure one burst of ``cfg.n`` webhooks, stop it."""
    if redis is not None:
        redis.flush()
    port = procs.free_port()
    log = logdir / f"scaleout-{setup.name}-round{round_no}.log"
    env = bot_env(stub.base_url)
    proc = procs.spawn(_launch(setup, port, redis), env=env, log=log)
    try:
        try:
            startup = procs.wait_port(proc, port, cfg.start_timeout)
            await _wait_workers(proc, setup, log, cfg.start_timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{setup.name} did not start: {exc}\n{procs.tail(log)}") from None
        return await _measure(setup, proc, port, stub, redis, cfg, round_no, startup)
    finally:
        procs.stop(proc, timeout=15)


async def _measure(
    setup: Setup,
    proc: Any,
    port: int,
    stub: Stub,
    redis: RedisProc | None,
    cfg: ScaleConfig,
    round_no: int,
    startup: float,
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/webhook"
    conv = conversation_ids(cfg.conversations or max(1, cfg.n // 10), f"s{round_no}{setup.name}")
    tag = f"{setup.name}{round_no}"
    warm = plan_events(cfg.warmup, conv, f"{tag}w")
    timed = plan_events(cfg.n, conv, tag)
    pids = tree(proc.pid)
    connector = aiohttp.TCPConnector(limit=cfg.concurrency)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        aiohttp.ClientSession() as control_session,
    ):
        control = StubControl(control_session, stub.base_url)
        if warm:
            await control.reset()
            await drive(session, url, sign_all(warm, SECRET), cfg.concurrency)
            await control.wait("reply", len(warm), cfg.straggler_timeout + 5)
        signed = sign_all(timed, SECRET)
        await control.reset()
        cpu0 = _cpu(pids)
        redis0 = redis.cpu_seconds() if redis is not None else 0.0
        result = await drive(session, url, signed, cfg.concurrency)
        last_ack = max(result.ack) if result.ack else time.monotonic()
        remaining = cfg.straggler_timeout - (time.monotonic() - last_ack)
        await control.wait("reply", cfg.n, remaining)
        cpu1 = _cpu(pids)
        redis1 = redis.cpu_seconds() if redis is not None else 0.0
        hwm = _peak_rss(pids)
        replies, _other = await control.replies()
    if proc.poll() is not None:
        raise RuntimeError(f"{setup.name} died during the round")
    arrived, wrong = _score_replies(timed, replies)
    acked = [result.ack[i] - result.send[i] for i in range(cfg.n) if result.status[i] == 200]
    span = (max(arrived.values()) - result.first_send) if arrived else float("nan")
    bot_cpu = (cpu1 - cpu0) / cfg.n * 1000
    redis_cpu = (redis1 - redis0) / cfg.n * 1000
    return {
        "round": round_no,
        "processes": len(pids),
        "events_per_s": len(arrived) / span if arrived and span > 0 else 0.0,
        "ack_p50_ms": percentile(acked, 0.50) * 1000,
        "ack_p99_ms": percentile(acked, 0.99) * 1000,
        "cpu_s_per_1k": bot_cpu,
        "redis_cpu_s_per_1k": redis_cpu,
        "total_cpu_s_per_1k": bot_cpu + redis_cpu,
        "peak_rss_mb": hwm / 1_048_576,
        "startup_s": startup,
        "lost": cfg.n - len(arrived),
        "wrong": wrong,
        "ack_errors": sum(1 for s in result.status if s != 200),
    }


_FIGURES = (
    "events_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "cpu_s_per_1k",
    "redis_cpu_s_per_1k",
    "total_cpu_s_per_1k",
    "peak_rss_mb",
    "startup_s",
)


async def run_scaleout(
    cfg: ScaleConfig,
    logdir: pathlib.Path,
    progress: Callable[[str], None] = lambda _msg: None,
    setups: Sequence[Setup] = SETUPS,
) -> dict[str, Any]:
    """Alternate the setups for ``cfg.rounds`` rounds against one stub and one Redis."""
    if redis_binary() is None:
        return {"skipped": "redis-server is not installed (apt-get install redis-server)"}
    stub = start_stub(logdir / "scaleout-stub.log")
    redis = RedisProc(logdir / "scaleout-redis")
    per: dict[str, list[dict[str, Any]]] = {s.name: [] for s in setups}
    errors: dict[str, str] = {}
    try:
        redis.start()
        for round_no in range(1, cfg.rounds + 1):
            for setup in setups:
                if setup.name in errors:
                    continue
                store = redis if setup.store == "redis" else None
                try:
                    r = await run_round(setup, stub, store, cfg, round_no, logdir)
                except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError) as exc:
                    errors[setup.name] = str(exc)
                    progress(f"  {setup.name}: FAILED: {str(exc).splitlines()[0]}")
                    continue
                per[setup.name].append(r)
                progress(
                    f"  round {round_no} {setup.name:8s} {r['events_per_s']:7.0f} ev/s"
                    f"  ack p99 {r['ack_p99_ms']:6.1f} ms  cpu/1k {r['cpu_s_per_1k']:.3f} s"
                    f" (+redis {r['redis_cpu_s_per_1k']:.3f})  lost {r['lost']}"
                )
    finally:
        redis.stop()
        procs.stop(stub.proc)
    summaries = {
        name: summarize(rs, medians=_FIGURES, sums=("lost", "wrong", "ack_errors"))
        for name, rs in per.items()
    }
    memory = summaries.get("memory-1", {})
    redis1 = summaries.get("redis-1", {})
    return {
        "config": {
            "n": cfg.n,
            "concurrency": cfg.concurrency,
            "rounds": cfg.rounds,
            "warmup": cfg.warmup,
            "conversations": cfg.conversations or max(1, cfg.n // 10),
            "redis_appendfsync": redis.fsync,
        },
        "setups": {
            name: {"summary": summaries[name], "rounds": rs, "error": errors.get(name)}
            for name, rs in per.items()
        },
        "cpu_ratio": ratio_of(redis1.get("cpu_s_per_1k"), memory.get("cpu_s_per_1k")),
        "total_cpu_ratio": ratio_of(redis1.get("total_cpu_s_per_1k"), memory.get("cpu_s_per_1k")),
    }


def scaleout_rows(results: dict[str, Any]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows and target checks for the table: one row per figure, the setups side by side."""
    if "skipped" in results or "error" in results:
        note = results.get("skipped") or results.get("error") or ""
        ok = None if "skipped" in results else False
        return [Row(f"scale-out: {note.splitlines()[0][:70]}", result=verdict(ok))], [
            {"name": "scale-out", "value": note, "pass": ok}
        ]
    setups = results["setups"]
    names = [name for name in setups if setups[name]["summary"].get("rounds")]

    def cells(key: str, digits: int) -> str:
        return " / ".join(fmt(setups[n]["summary"].get(key), digits) for n in names)

    head = " / ".join(names)
    rows = [
        Row(f"setups: {head}"),
        Row("events/s", cells("events_per_s", 0)),
        Row("ack p50 (ms)", cells("ack_p50_ms", 2)),
        Row("ack p99 (ms)", cells("ack_p99_ms", 2)),
        Row("CPU s / 1,000 events (bot)", cells("cpu_s_per_1k", 3)),
        Row("CPU s / 1,000 events (redis-server)", cells("redis_cpu_s_per_1k", 3)),
        Row("peak RSS (MB, all bot processes)", cells("peak_rss_mb", 1)),
        Row(
            "lost / wrong / non-200",
            " / ".join(
                f"{setups[n]['summary']['lost']}+{setups[n]['summary']['wrong']}"
                f"+{setups[n]['summary']['ack_errors']}"
                for n in names
            ),
        ),
    ]
    ratio = results.get("cpu_ratio")
    ok = None if ratio is None else ratio <= CPU_RATIO_MAX
    rows.append(
        Row(
            "CPU per event, Redis / memory (bot)",
            ratio="-" if ratio is None else f"{ratio:.3f}x",
            target=f"<= {CPU_RATIO_MAX:g}x",
            result=verdict(ok),
        )
    )
    total = results.get("total_cpu_ratio")
    rows.append(
        Row(
            "  same, counting redis-server's CPU",
            ratio="-" if total is None else f"{total:.3f}x",
        )
    )
    lost = sum(setups[n]["summary"]["lost"] + setups[n]["summary"]["wrong"] for n in names)
    ok_lost = None if not names else lost == 0
    for name, data in setups.items():
        if data.get("error"):
            rows.append(Row(f"{name} FAILED: {data['error'].splitlines()[0][:70]}"))
    checks = [
        {
            "name": "scale-out CPU per event, Redis / memory",
            "value": ratio,
            "target": f"<= {CPU_RATIO_MAX:g}x",
            "pass": ok,
        },
        {"name": "scale-out lost / wrong replies", "value": lost, "target": "0", "pass": ok_lost},
    ]
    return rows, checks


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.scaleout``: this section alone; prints the table and JSON."""
    from benchmarks.report import render

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaleout")
    parser.add_argument("--quick", action="store_true", help="one round of 600 webhooks")
    parser.add_argument("--n", type=int, help="webhooks per round")
    parser.add_argument("--rounds", type=int, help="rounds per setup")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    cfg = ScaleConfig.quick() if args.quick else ScaleConfig()
    if args.n or args.rounds:
        cfg = ScaleConfig(
            n=args.n or cfg.n,
            rounds=args.rounds or cfg.rounds,
            warmup=min(cfg.warmup, args.n or cfg.warmup),
        )
    with tempfile.TemporaryDirectory(prefix="imbot-scaleout-") as tmp:
        results = asyncio.run(
            run_scaleout(cfg, pathlib.Path(tmp), lambda m: print(m, file=sys.stderr))
        )
    rows, _checks = scaleout_rows(results)
    print(render("imbot scale-out", [("Echo load by setup", rows)]))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
