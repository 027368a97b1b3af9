"""Start-up costs: ``import imbot`` and ``imbot dev`` to a ready chat page."""

from __future__ import annotations

import json
import pathlib
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from benchmarks import procs

_IMPORT_PROBE = (
    "import time, json; t0 = time.perf_counter(); import imbot; "
    "print(json.dumps({'import_s': time.perf_counter() - t0}))"
)
# What a bot really pays: the names are loaded lazily, so `import imbot` alone is cheap.
_BOT_PROBE = (
    "import time, json; t0 = time.perf_counter(); from imbot import Bot; "
    "print(json.dumps({'import_s': time.perf_counter() - t0}))"
)


def _run(argv: list[str], timeout: float = 30.0) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=procs.REPO_ROOT,
        env=procs.child_env(),
        capture_output=True,
        timeout=timeout,
        check=True,
    )
    return time.perf_counter() - start, done.stdout.decode()


def measure_import(runs: int = 7) -> dict[str, Any]:
    """Median over ``runs`` fresh interpreters of the time ``import imbot`` takes.

    Reports the import itself (timed inside the child, the figure the target is about),
    ``from imbot import Bot`` (what a bot pays, since names load lazily), the whole
    ``python -c "import imbot"`` wall time, and a bare ``python -c pass`` for the
    interpreter's own share.
    """
    inner: list[float] = []
    bot: list[float] = []
    wall: list[float] = []
    bare: list[float] = []
    _run([procs.PYTHON, "-c", "import imbot"])  # warm the page cache and bytecode
    for _ in range(runs):
        elapsed, out = _run([procs.PYTHON, "-c", _IMPORT_PROBE])
        inner.append(json.loads(out)["import_s"])
        bot.append(json.loads(_run([procs.PYTHON, "-c", _BOT_PROBE])[1])["import_s"])
        wall.append(_run([procs.PYTHON, "-c", "import imbot"])[0])
        bare.append(_run([procs.PYTHON, "-c", "pass"])[0])
        del elapsed
    return {
        "runs": runs,
        "import_ms": statistics.median(inner) * 1000,
        "bot_import_ms": statistics.median(bot) * 1000,
        "process_ms": statistics.median(wall) * 1000,
        "bare_python_ms": statistics.median(bare) * 1000,
    }


def dev_command() -> list[str] | None:
    """The ``imbot dev`` command line, or ``None`` when the CLI has no ``dev`` yet."""
    base = (
        [procs.PYTHON, "-m", "imbot"]
        if (procs.REPO_ROOT / "imbot" / "__main__.py").exists()
        else [
            procs.PYTHON,
            "-c",
            "import sys; from imbot.cli import main; sys.exit(main())",
            "imbot",
        ]
    )
    try:
        probe = subprocess.run(
            [*base, "dev", "--help"],
            cwd=procs.REPO_ROOT,
            env=procs.child_env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if probe.returncode != 0:
        return None
    return [*base, "dev"]


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def measure_dev(logdir: pathlib.Path, runs: int = 3, timeout: float = 30.0) -> dict[str, Any]:
    """Median time from spawning ``imbot dev examples/echo.py`` to ``GET /`` answering 200.

    The simulator keeps its database in a fresh temporary file each run (a cold start).
    """
    cmd = dev_command()
    if cmd is None:
        return {"skipped": "`imbot dev` is not available yet (imbot/cli.py has no dev command)"}
    app = "examples/echo.py"
    note = ""
    if not (procs.REPO_ROOT / app).exists():
        app = "benchmarks/echo_bot.py"
        note = "examples/echo.py missing: timed with benchmarks/echo_bot.py"
    times: list[float] = []
    for i in range(runs):
        port = procs.free_port()
        log = logdir / f"dev-{i}.log"
        db = logdir / f"dev-{i}.sqlite3"
        argv = [*cmd, app, "--port", str(port), "--bot-port", "0", "--db", str(db)]
        start = time.monotonic()
        proc = procs.spawn(argv, log=log, new_session=True)
        try:
            deadline = start + timeout
            while _get_status(f"http://127.0.0.1:{port}/") != 200:
                if proc.poll() is not None:
                    return {"error": f"imbot dev exited with {proc.returncode}\n{procs.tail(log)}"}
                if time.monotonic() > deadline:
                    return {"error": f"no chat page within {timeout} s\n{procs.tail(log)}"}
                time.sleep(0.005)
            times.append(time.monotonic() - start)
        finally:
            procs.stop(proc, sig=signal.SIGINT, group=True)
    result: dict[str, Any] = {"runs": runs, "ready_s": statistics.median(times), "app": app}
    if note:
        result["note"] = note
    return result
