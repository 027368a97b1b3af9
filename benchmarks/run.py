"""``python -m benchmarks``: run the suite, print the table, optionally write JSON.

Sections (``--only`` picks some): ``load`` (imbot echo bot against the aiohttp floor,
alternating A B A B), ``sim`` (the simulator alone), ``memory`` (bytes per idle
conversation), ``startup`` (``import imbot`` and ``imbot dev``), ``scaleout`` (the echo bot
on memory, on Redis, and as two workers on Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks import procs
from benchmarks.contenders import imbot_contender
from benchmarks.load import LoadConfig, floor_contender, run_load
from benchmarks.report import (
    TARGETS,
    load_rows,
    memory_rows,
    render,
    sim_rows,
    startup_rows,
)
from benchmarks.scaleout import ScaleConfig, run_scaleout, scaleout_rows
from benchmarks.sim_bench import SimConfig, run_sim
from benchmarks.startup import measure_dev, measure_import

SECTIONS = ("load", "sim", "memory", "startup", "scaleout")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="imbot benchmark suite: framework overhead against a hand-written floor",
    )
    p.add_argument("--quick", action="store_true", help="small sizes: finishes in under 60 s")
    p.add_argument("--n", type=int, help="webhooks per round (default 3000; quick 600)")
    p.add_argument("--concurrency", "-c", type=int, default=64, help="requests in flight")
    p.add_argument("--rounds", type=int, help="rounds per contender (default 9; quick 3)")
    p.add_argument("--warmup", type=int, help="warm-up webhooks per round (default 300)")
    p.add_argument("--sim-n", type=int, help="simulator sends (default 3000; quick 600)")
    p.add_argument("--phones", type=int, help="simulator humans (default 300; quick 60)")
    p.add_argument("--conversations", type=int, help="memory test conversations (default 100000)")
    p.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)"
    )
    p.add_argument(
        "--contender",
        action="append",
        choices=("imbot", "floor"),
        help="load-test contenders (default both)",
    )
    p.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    p.add_argument("--logs", metavar="DIR", help="keep child process logs in DIR")
    p.add_argument("--strict", action="store_true", help="exit 1 when any target fails")
    return p


def _progress(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _memory(conversations: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("dispatcher", "bot"):
        try:
            done = subprocess.run(
                [
                    procs.PYTHON,
                    "-m",
                    "benchmarks.memory",
                    "--mode",
                    mode,
                    "--conversations",
                    str(conversations),
                ],
                cwd=procs.REPO_ROOT,
                env=procs.child_env(),
                capture_output=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out[mode] = {"error": "timed out after 120 s"}
            continue
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            reason = err[-1] if err else f"exit {done.returncode}"
            out[mode] = {"error": reason}
        else:
            out[mode] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return out


def _sanitize(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    return value


async def run(args: argparse.Namespace, logdir: pathlib.Path) -> dict[str, Any]:
    """Run the chosen sections and return every figure."""
    quick = args.quick
    sections = args.only or list(SECTIONS)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "quick": quick,
        "targets": TARGETS,
    }
    if "load" in sections:
        cfg = LoadConfig(
            n=args.n or (600 if quick else 3000),
            concurrency=args.concurrency,
            rounds=args.rounds or (3 if quick else 9),
            warmup=args.warmup if args.warmup is not None else (100 if quick else 300),
        )
        wanted = args.contender or ["imbot", "floor"]
        contenders = []
        unavailable: dict[str, str] = {}
        if "imbot" in wanted:
            im = imbot_contender()
            if isinstance(im, str):
                unavailable["imbot"] = im
            else:
                contenders.append(im)
        if "floor" in wanted:
            contenders.append(floor_contender())
        _progress(
            f"echo load: N={cfg.n} C={cfg.concurrency} rounds={cfg.rounds} "
            f"({', '.join(c.name + (' via ' + c.note if c.note else '') for c in contenders)})"
        )
        load = await run_load(contenders, cfg, logdir, _progress)
        for name, why in unavailable.items():
            load["contenders"][name] = {"summary": {}, "rounds": [], "error": why}
        results["load"] = load
    if "sim" in sections:
        scfg = SimConfig(
            n=args.sim_n or (600 if quick else 3000),
            phones=args.phones or (60 if quick else 300),
        )
        _progress(
            f"simulator: {scfg.n} sends over {scfg.phones} conversations, C={scfg.concurrency}"
        )
        try:
            results["sim"] = await run_sim(scfg, logdir)
        except ImportError as exc:
            results["sim"] = {"skipped": f"simulator not available: {exc}"}
        except Exception as exc:  # report, don't abort the other sections
            results["sim"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "memory" in sections:
        conversations = args.conversations or (20_000 if quick else 100_000)
        _progress(f"memory: {conversations:,} conversations, one event each")
        results["memory"] = _memory(conversations)
    if "startup" in sections:
        _progress("start-up: import imbot, imbot dev")
        start: dict[str, Any] = {}
        try:
            start["import"] = measure_import(3 if quick else 7)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            start["import"] = {"error": str(exc)}
        start["dev"] = measure_dev(logdir, runs=1 if quick else 3)
        results["startup"] = start
    if "scaleout" in sections:
        scale = ScaleConfig.quick() if quick else ScaleConfig()
        _progress(
            f"scale-out: N={scale.n} C={scale.concurrency} rounds={scale.rounds}: "
            "1 worker on memory, 1 on Redis, 2 on Redis"
        )
        try:
            results["scaleout"] = await run_scaleout(scale, logdir, _progress)
        except Exception as exc:  # report, don't abort the other sections
            results["scaleout"] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def render_results(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The table for ``results`` and the list of target checks."""
    sections = []
    checks: list[dict[str, Any]] = []
    title = f"imbot benchmarks ({results['machine']['cpus']} CPUs shared by driver, stub and bot)"
    if "load" in results:
        c = results["load"]["config"]
        rows, ch = load_rows(results["load"])
        sections.append(
            (
                f"Echo load: N={c['n']:,} signed webhooks, C={c['concurrency']}, "
                f"{c['conversations']:,} conversations, median of {c['rounds']} rounds (A B A B)",
                rows,
            )
        )
        checks += ch
    if "sim" in results:
        rows, ch = sim_rows(results["sim"])
        sections.append(("Simulator alone (SQLite file, delivery_delay=0)", rows))
        checks += ch
    if "memory" in results:
        rows, ch = memory_rows(results["memory"])
        sections.append(("Memory per idle conversation", rows))
        checks += ch
    if "startup" in results:
        rows, ch = startup_rows(results["startup"])
        sections.append(("Start-up", rows))
        checks += ch
    if "scaleout" in results:
        rows, ch = scaleout_rows(results["scaleout"])
        config = results["scaleout"].get("config") or {}
        title = "Scale-out: echo bot by setup"
        if config:
            title += (
                f", N={config['n']:,}, C={config['concurrency']}, median of "
                f"{config['rounds']} rounds (A B C A B C)"
            )
        sections.append((title, rows))
        checks += ch
    return render(title, sections), checks


def main(argv: list[str] | None = None) -> int:
    """Run the suite from the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imbot-bench-") as tmp:
        logdir = pathlib.Path(args.logs) if args.logs else pathlib.Path(tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(args, logdir))
    results["elapsed_s"] = time.monotonic() - started
    table, checks = render_results(results)
    results["checks"] = checks
    failed = [c for c in checks if c.get("pass") is False]
    summary = (
        f"\n{sum(1 for c in checks if c.get('pass'))} PASS, {len(failed)} FAIL, "
        f"{sum(1 for c in checks if c.get('pass') is None)} not measured; "
        f"{results['elapsed_s']:.0f} s. Ratios matter more than absolute numbers: "
        "driver, stub and contender share this machine's CPUs."
    )
    sys.stdout.write(table + "\n" + summary + "\n")
    busy = [
        c["summary"].get("other_cpu_share", 0.0)
        for c in results.get("load", {}).get("contenders", {}).values()
        if c.get("summary", {}).get("rounds")
    ]
    if busy and max(busy) > 0.2:
        sys.stdout.write(
            f"WARNING: other processes used up to {max(busy) * 100:.0f}% of a CPU during the "
            "timed windows; absolute figures are noisy (ratios less so).\n"
        )
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(_sanitize(results), indent=2) + "\n")
    return 1 if args.strict and failed else 0
