"""Targets and the plain-text table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The goals the suite checks, in one place (docs/benchmarks.md explains each).
TARGETS = {
    "events_ratio_min": 0.85,  # imbot events/s >= 0.85 x floor at C=64
    "cpu_ratio_max": 1.25,  # CPU per 1,000 events <= 1.25 x floor
    "ack_p99_ratio_max": 1.5,  # ack p99 <= 1.5 x floor
    "startup_s_max": 0.6,  # start-up to a listening port
    "import_ms_max": 150.0,  # python -c "import imbot"
    "peak_rss_mb_max": 70.0,  # echo bot under load
    "bytes_per_conversation_max": 1024.0,  # idle conversation
    "sim_sends_per_s_min": 1000.0,
}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; ``result`` is PASS, FAIL, or empty for information only."""

    label: str
    imbot: str = ""
    floor: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


def fmt(value: Any, digits: int = 1) -> str:
    """A number for the table (thousands separated, NaN and None as a dash)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    """PASS / FAIL / blank."""
    return "" if ok is None else ("PASS" if ok else "FAIL")


def ratio_of(a: Any, b: Any) -> float | None:
    """``a / b``, or ``None`` when either is missing, not a number, NaN, or ``b`` is zero."""
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    if math.isnan(a) or math.isnan(b):
        return None
    return float(a) / float(b)


def load_rows(load: dict[str, Any]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows and target checks for the echo load test."""
    contenders = load["contenders"]
    im = (contenders.get("imbot") or {}).get("summary") or {}
    fl = (contenders.get("floor") or {}).get("summary") or {}
    has_im = bool(im.get("rounds"))
    has_fl = bool(fl.get("rounds"))
    t = TARGETS
    # (label, key, digits, kind, limit): kind is ratio_min / ratio_max / abs_max / info
    spec: list[tuple[str, str, int, str, float | None]] = [
        ("events/s", "events_per_s", 0, "ratio_min", t["events_ratio_min"]),
        ("ack p50 (ms)", "ack_p50_ms", 2, "info", None),
        ("ack p99 (ms)", "ack_p99_ms", 2, "ratio_max", t["ack_p99_ratio_max"]),
        ("send->reply p50 (ms)", "reply_p50_ms", 2, "info", None),
        ("send->reply p99 (ms)", "reply_p99_ms", 2, "info", None),
        ("CPU s / 1,000 events", "cpu_s_per_1k", 3, "ratio_max", t["cpu_ratio_max"]),
        ("peak RSS (MB)", "peak_rss_mb", 1, "abs_max", t["peak_rss_mb_max"]),
        ("start-up to port (s)", "startup_s", 3, "abs_max", t["startup_s_max"]),
    ]
    rows: list[Row] = []
    checks: list[dict[str, Any]] = []
    for label, key, digits, kind, limit in spec:
        a = im.get(key) if has_im else None
        b = fl.get(key) if has_fl else None
        ratio = ratio_of(a, b)
        ok: bool | None = None
        target = ""
        if kind == "ratio_min" and limit is not None:
            target = f">= {limit:g}x floor"
            ok = None if ratio is None else ratio >= limit
        elif kind == "ratio_max" and limit is not None:
            target = f"<= {limit:g}x floor"
            ok = None if ratio is None else ratio <= limit
        elif kind == "abs_max" and limit is not None:
            target = f"<= {limit:g}"
            ok = None if a is None else a <= limit
        rows.append(
            Row(
                label,
                fmt(a, digits),
                fmt(b, digits),
                "-" if ratio is None else f"{ratio:.3f}x",
                target,
                verdict(ok),
            )
        )
        if kind != "info":
            checks.append(
                {
                    "name": f"echo {label}",
                    "value": a,
                    "floor": b,
                    "ratio": ratio,
                    "target": target,
                    "pass": ok,
                }
            )
    lost_a = f"{im.get('lost', 0)} / {im.get('wrong', 0)}" if has_im else "-"
    lost_b = f"{fl.get('lost', 0)} / {fl.get('wrong', 0)}" if has_fl else "-"
    ok_lost = None if not has_im else im.get("lost", 0) == 0 and im.get("wrong", 0) == 0
    rows.append(Row("lost / wrong replies (sum)", lost_a, lost_b, "", "0 / 0", verdict(ok_lost)))
    checks.append(
        {"name": "echo lost / wrong replies", "value": lost_a, "target": "0 / 0", "pass": ok_lost}
    )
    errs_a = f"{im.get('ack_errors', 0)}" if has_im else "-"
    errs_b = f"{fl.get('ack_errors', 0)}" if has_fl else "-"
    rows.append(Row("non-200 acks (sum)", errs_a, errs_b))
    if has_im or has_fl:
        rows.append(
            Row(
                "CPU: contender/stub/driver/other",
                _shares(im) if has_im else "-",
                _shares(fl) if has_fl else "-",
            )
        )
    for name, data in contenders.items():
        if data.get("error"):
            rows.append(Row(f"{name} FAILED: {data['error'].splitlines()[0][:70]}"))
    return rows, checks


def _shares(summary: dict[str, Any]) -> str:
    return "/".join(
        f"{summary.get(k, 0) * 100:.0f}%"
        for k in ("contender_cpu_share", "stub_cpu_share", "driver_cpu_share", "other_cpu_share")
    )


def sim_rows(sim: dict[str, Any]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows and checks for the simulator benchmark."""
    if "error" in sim or "skipped" in sim:
        note = sim.get("error") or sim.get("skipped") or ""
        ok = None if "skipped" in sim else False
        first = note.splitlines()[0][:70] if note else ""
        return [Row(f"simulator: {first}", result=verdict(ok))], [
            {"name": "simulator", "value": note, "pass": ok}
        ]
    limit = TARGETS["sim_sends_per_s_min"]
    ok_rate = sim["sends_per_s"] >= limit
    ok_life = (
        sim["complete_lifecycles"] == sim["n"]
        and sim["queued"] == sim["n"]
        and sim["lost_webhooks"] == 0
        and sim["bad_status"] == 0
        and sim["unsigned"] == 0
    )
    rows = [
        Row(
            "sends/s (SQLite file)",
            fmt(sim["sends_per_s"], 0),
            target=f">= {limit:,.0f}",
            result=verdict(ok_rate),
        ),
        Row("webhook deliveries/s", fmt(sim["deliveries_per_s"], 0)),
        Row(
            "send latency p50 / p99 (ms)",
            f"{fmt(sim['send_p50_ms'], 1)} / {fmt(sim['send_p99_ms'], 1)}",
        ),
        Row(
            "queued->sent->delivered / lost hooks",
            f"{sim['complete_lifecycles']}/{sim['n']}, {sim['lost_webhooks']} lost",
            target="all, 0 lost",
            result=verdict(ok_life),
        ),
        Row("CPU s / 1,000 sends", fmt(sim["cpu_s_per_1k_sends"], 3)),
        Row("peak RSS (MB)", fmt(sim["peak_rss_mb"], 1)),
    ]
    checks = [
        {
            "name": "simulator sends/s",
            "value": sim["sends_per_s"],
            "target": f">= {limit:g}",
            "pass": ok_rate,
        },
        {
            "name": "simulator lifecycle, no lost webhook",
            "value": sim["lost_webhooks"],
            "target": "0 lost",
            "pass": ok_life,
        },
    ]
    return rows, checks


def memory_rows(mem: dict[str, Any]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows and checks for memory per idle conversation."""
    rows: list[Row] = []
    checks: list[dict[str, Any]] = []
    limit = TARGETS["bytes_per_conversation_max"]
    for mode, label in (("dispatcher", "Dispatcher"), ("bot", "Bot.feed (+ dedupe ids)")):
        data = mem.get(mode)
        if data is None:
            continue
        if "error" in data or "skipped" in data:
            note = (data.get("error") or data.get("skipped") or "").splitlines()[0][:60]
            ok = False if "error" in data and mode == "dispatcher" else None
            rows.append(Row(f"{label}: {note}", result=verdict(ok)))
            if mode == "dispatcher":
                checks.append({"name": "bytes per idle conversation", "value": note, "pass": ok})
            continue
        value = data["bytes_per_conversation"]
        ok = value <= limit if mode == "dispatcher" else None
        rows.append(
            Row(
                f"{label} bytes / idle conv ({data['conversations']:,})",
                fmt(value, 1),
                target=f"<= {limit:,.0f}" if mode == "dispatcher" else "",
                result=verdict(ok),
            )
        )
        if mode == "dispatcher":
            checks.append(
                {
                    "name": "bytes per idle conversation",
                    "value": value,
                    "target": f"<= {limit:g}",
                    "pass": ok,
                }
            )
    return rows, checks


def startup_rows(start: dict[str, Any]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows and checks for import and ``imbot dev`` times."""
    rows: list[Row] = []
    checks: list[dict[str, Any]] = []
    imp = start.get("import")
    if imp is not None:
        if "error" in imp:
            rows.append(Row(f"import imbot: {imp['error'][:60]}", result="FAIL"))
            checks.append({"name": "import imbot", "value": imp["error"], "pass": False})
        else:
            limit = TARGETS["import_ms_max"]
            ok = imp["import_ms"] <= limit
            rows.append(
                Row(
                    "import imbot (ms, in process)",
                    fmt(imp["import_ms"], 1),
                    target=f"<= {limit:g}",
                    result=verdict(ok),
                )
            )
            if "bot_import_ms" in imp:
                # Names load lazily, so this is what a bot really pays at start.
                ok_bot = imp["bot_import_ms"] <= limit
                rows.append(
                    Row(
                        "from imbot import Bot (ms, in process)",
                        fmt(imp["bot_import_ms"], 1),
                        target=f"<= {limit:g}",
                        result=verdict(ok_bot),
                    )
                )
                checks.append(
                    {
                        "name": "from imbot import Bot (ms)",
                        "value": imp["bot_import_ms"],
                        "target": f"<= {limit:g}",
                        "pass": ok_bot,
                    }
                )
            rows.append(
                Row(
                    "process: import imbot / bare (ms)",
                    f"{fmt(imp['process_ms'], 1)} / {fmt(imp['bare_python_ms'], 1)}",
                )
            )
            checks.append(
                {
                    "name": "import imbot (ms)",
                    "value": imp["import_ms"],
                    "target": f"<= {limit:g}",
                    "pass": ok,
                }
            )
    dev = start.get("dev")
    if dev is not None:
        if "ready_s" in dev:
            rows.append(Row("imbot dev -> chat page (s)", fmt(dev["ready_s"], 2)))
            if dev.get("note"):
                rows.append(Row(f"  ({dev['note']})"))
        else:
            note = (dev.get("skipped") or dev.get("error") or "").splitlines()[0][:70]
            rows.append(Row(f"imbot dev: {note}", result="" if "skipped" in dev else "FAIL"))
    return rows, checks


def render(title: str, sections: Sequence[tuple[str, Sequence[Row]]]) -> str:
    """An aligned plain-text table: one header line per section, then its rows."""
    headers = Row("", "imbot", "floor", "imbot/floor", "target", "result")
    all_rows = [headers, *(r for _, rows in sections for r in rows)]
    cols = ("label", "imbot", "floor", "ratio", "target", "result")
    # Long notes (rows with only a label) don't widen the first column.
    widths = {
        c: max(
            len(getattr(r, c))
            for r in all_rows
            if c != "label" or any(getattr(r, k) for k in cols[1:])
        )
        for c in cols
    }

    def line(r: Row) -> str:
        cells = [r.label.ljust(widths["label"])]
        cells += [getattr(r, c).rjust(widths[c]) for c in ("imbot", "floor", "ratio")]
        cells += [r.target.ljust(widths["target"]), r.result]
        return ("  ".join(cells)).rstrip()

    head = "  " + line(headers)
    out = [title, "", head, "-" * len(head)]
    for name, rows in sections:
        out.append(name)
        for r in rows:
            out.append("  " + line(r) if any(getattr(r, c) for c in cols[1:]) else "  " + r.label)
    return "\n".join(out)
