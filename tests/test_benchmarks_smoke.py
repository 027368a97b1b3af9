"""Smoke test of the benchmark harness at tiny sizes: real stub, real driver, real floor."""

from __future__ import annotations

import pathlib
import sys

import anyio

# `python -m pytest` puts the repo root on sys.path; the bare `pytest` script does not.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.load import Contender, Launch, LoadConfig, floor_contender, run_load
from benchmarks.report import load_rows, render
from benchmarks.run import render_results

TINY = LoadConfig(n=50, concurrency=8, rounds=1, warmup=10, straggler_timeout=2.0)


async def test_floor_replies_arrive_and_table_renders(tmp_path: pathlib.Path) -> None:
    with anyio.fail_after(20):
        load = await run_load([floor_contender()], TINY, tmp_path)
    floor = load["contenders"]["floor"]
    assert floor["error"] is None
    summary = floor["summary"]
    assert summary["rounds"] == 1
    assert summary["lost"] == 0
    assert summary["wrong"] == 0
    assert summary["ack_errors"] == 0
    assert summary["events_per_s"] > 0
    assert summary["cpu_s_per_1k"] >= 0
    assert summary["peak_rss_mb"] > 5
    assert 0 < summary["startup_s"] < 10
    assert summary["ack_p50_ms"] <= summary["ack_p99_ms"]

    results = {"machine": {"cpus": 2}, "load": load}
    table, checks = render_results(results)
    assert "events/s" in table
    assert "floor" in table
    assert any(c["name"] == "echo events/s" for c in checks)
    lines = [line for line in table.splitlines() if line.startswith("  events/s")]
    assert len(lines) == 1


async def test_a_contender_that_acks_without_replying_loses_events(
    tmp_path: pathlib.Path,
) -> None:
    base = floor_contender()

    def silent(port: int, _api_base: str) -> Launch:
        # The floor acks every webhook, but its replies go to a port nobody listens on.
        return base.launch(port, "http://127.0.0.1:9")

    cfg = LoadConfig(n=20, concurrency=4, rounds=1, warmup=0, straggler_timeout=1.0)
    with anyio.fail_after(20):
        load = await run_load([Contender("floor", silent)], cfg, tmp_path)
    summary = load["contenders"]["floor"]["summary"]
    assert summary["ack_errors"] == 0
    assert summary["lost"] == 20
    assert summary["events_per_s"] == 0.0
    rows, _checks = load_rows(load)
    assert "20 / 0" in render("t", [("echo", rows)])


def test_every_section_renders_with_verdicts() -> None:
    results = {
        "machine": {"cpus": 2},
        "sim": {
            "n": 100,
            "sends_per_s": 500.0,
            "deliveries_per_s": 900.0,
            "send_p50_ms": 3.0,
            "send_p99_ms": 9.0,
            "queued": 100,
            "complete_lifecycles": 100,
            "lost_webhooks": 0,
            "bad_status": 0,
            "unsigned": 0,
            "cpu_s_per_1k_sends": 0.5,
            "peak_rss_mb": 50.0,
        },
        "memory": {
            "dispatcher": {"conversations": 1000, "bytes_per_conversation": 2048.0},
            "bot": {"error": "boom"},
        },
        "startup": {
            "import": {
                "import_ms": 12.0,
                "bot_import_ms": 90.0,
                "process_ms": 40.0,
                "bare_python_ms": 10.0,
            },
            "dev": {"skipped": "`imbot dev` is not available yet"},
        },
    }
    table, checks = render_results(results)
    verdicts = {c["name"]: c["pass"] for c in checks}
    assert verdicts["simulator sends/s"] is False
    assert verdicts["simulator lifecycle, no lost webhook"] is True
    assert verdicts["bytes per idle conversation"] is False
    assert verdicts["import imbot (ms)"] is True
    assert "not available yet" in table
    assert "Bot.feed (+ dedupe ids): boom" in table
    widths = {len(line) for line in table.splitlines()[2:4]}
    assert len(widths) == 1  # the header and the rule line up
