"""Process helpers: spawn, wait for a listening port, read CPU and memory from /proc."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, the repo on ``PYTHONPATH``, no Inkbox settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INKBOX_", "IMBOT_")) and k != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: pathlib.Path | None = None,
    stdout_pipe: bool = False,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in the repo root; stderr (and stdout unless piped) go to ``log``.

    ``new_session`` puts the child in its own process group, so that ``stop(..., group=True)``
    can also reap grandchildren it leaves behind (``imbot dev`` runs the bot as a child).
    """
    sink = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(cmd),
            cwd=REPO_ROOT,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else sink,
            stderr=sink,
            start_new_session=new_session,
        )
    finally:
        if log is not None and not isinstance(sink, int):
            sink.close()


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(proc: subprocess.Popen[bytes], port: int, timeout: float) -> float:
    """Poll until ``port`` listens; return seconds since now. Raises if the process dies."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if port_open(port):
            return time.monotonic() - start
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listened on port {port} within {timeout} s")
        time.sleep(0.002)


def read_port_line(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Read the child's ``PORT <n>`` line from its stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), True)
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode().strip()
        if line.startswith("PORT "):
            return int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("the child did not report its port")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds every process on the machine has used so far (from /proc/stat)."""
    with open("/proc/stat", "rb") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    return (sum(fields[:8]) - fields[3] - fields[4]) / _CLK_TCK


def _status_kib(pid: int | str, key: bytes) -> int:
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key.decode())


def peak_rss(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of ``pid`` in bytes."""
    return _status_kib(pid, b"VmHWM:") * 1024


def rss(pid: int | str = "self") -> int:
    """Current resident set size (VmRSS) of ``pid`` in bytes."""
    return _status_kib(pid, b"VmRSS:") * 1024


def stop(
    proc: subprocess.Popen[bytes],
    *,
    sig: int = signal.SIGTERM,
    timeout: float = 5.0,
    group: bool = False,
) -> None:
    """Ask ``proc`` to stop, kill it if it does not within ``timeout``, and reap it.

    With ``group`` (for a child started with ``new_session``), whatever is left of its
    process group (the group this harness created, by its id) is killed afterwards.
    """
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()


def tail(path: pathlib.Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
