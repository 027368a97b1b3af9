"""Smoke test of ``benchmarks/scaleout.py`` at tiny sizes: real bots, real Redis, real stub."""

from __future__ import annotations

import pathlib
import sys

import anyio
import pytest

# `python -m pytest` puts the repo root on sys.path; the bare `pytest` script does not.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from benchmarks.redis_proc import redis_binary
from benchmarks.report import render
from benchmarks.run import render_results
from benchmarks.scaleout import SETUPS, ScaleConfig, run_scaleout, scaleout_rows

TINY = ScaleConfig(n=100, concurrency=8, rounds=1, warmup=10, straggler_timeout=5.0)


@pytest.mark.slow
@pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed")
async def test_every_setup_replies_and_the_ratio_is_measured(tmp_path: pathlib.Path) -> None:
    with anyio.fail_after(120):
        results = await run_scaleout(TINY, tmp_path)
    for setup in SETUPS:
        data = results["setups"][setup.name]
        assert data["error"] is None, data["error"]
        summary = data["summary"]
        assert summary["rounds"] == 1
        assert summary["lost"] == 0 and summary["wrong"] == 0 and summary["ack_errors"] == 0
        assert summary["events_per_s"] > 0
        assert summary["ack_p50_ms"] <= summary["ack_p99_ms"]
        # Redis's CPU is counted only for the setups that use it (at this size it may
        # round to nothing: /proc counts in 10 ms ticks).
        if setup.store == "memory":
            assert summary["redis_cpu_s_per_1k"] == 0
    # Two workers: the supervisor and both workers were measured.
    assert results["setups"]["redis-2"]["rounds"][0]["processes"] == 3
    assert results["cpu_ratio"] is not None and results["cpu_ratio"] > 0
    rows, checks = scaleout_rows(results)
    table = render("t", [("scale-out", rows)])
    assert "memory-1 / redis-1 / redis-2" in table
    assert {c["name"] for c in checks} == {
        "scale-out CPU per event, Redis / memory",
        "scale-out lost / wrong replies",
    }
    full, _ = render_results({"machine": {"cpus": 2}, "scaleout": results})
    assert "Scale-out: echo bot by setup" in full


def test_a_skipped_section_renders_as_a_note() -> None:
    rows, checks = scaleout_rows({"skipped": "redis-server is not installed"})
    assert "redis-server is not installed" in render("t", [("s", rows)])
    assert checks[0]["pass"] is None
