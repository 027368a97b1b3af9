"""``imbot sim``: start-up banner, default database, clean Ctrl-C, a taken port, hosts."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imbot.cli.main import build_parser, main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _spawn(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "IMBOT_SIM_ADMIN_KEY"}
    full_env.update({"PYTHONPATH": str(REPO_ROOT), **(env or {})})
    return subprocess.Popen(
        [sys.executable, "-m", "imbot", "sim", *args],
        cwd=tmp_path,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def _running(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run ``imbot sim``; kill it if the test did not stop it; always close its pipes."""
    with _spawn(tmp_path, *args, env=env) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=5)


def _banner(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    for _ in range(10):
        line = proc.stdout.readline()
        if not line:
            break
        if ":" in line and line.startswith("  "):
            name, _, value = line.strip().partition(":")
            lines[name] = value.strip().split()[0]
        if line.startswith("Press Ctrl-C"):
            return lines
    raise AssertionError(f"no banner; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_start_print_and_stop_on_ctrl_c(tmp_path: Path) -> None:
    with _running(tmp_path, "--port", "0", "--unreachable", "+15555550100", "+15555550101") as proc:
        banner = _banner(proc)
        base_url = banner["Base URL"]
        assert base_url.startswith("http://127.0.0.1:")
        assert banner["Admin API key"].startswith("ApiKey_")
        assert banner["Triage number"] == "+15550100000"
        assert banner["Chat page"] == base_url + "/"
        assert (tmp_path / ".imbot" / "sim.sqlite3").exists()
        with urllib.request.urlopen(base_url + "/sim/v1/info", timeout=5) as resp:
            info = json.loads(resp.read())
        assert info["router_number"] == "+15550100000"
        assert info["phones"] == ["+15555550100", "+15555550101"]
        with urllib.request.urlopen(base_url + "/", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/html")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_admin_key_from_env_and_kept_in_db(tmp_path: Path) -> None:
    with _running(tmp_path, "--port", "0", env={"IMBOT_SIM_ADMIN_KEY": "ApiKey_from_env"}) as proc:
        assert _banner(proc)["Admin API key"] == "ApiKey_from_env"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    with _running(tmp_path, "--port", "0", env={"IMBOT_SIM_ADMIN_KEY": ""}) as proc:
        # No key given: the one stored in the database is reused.
        assert _banner(proc)["Admin API key"] == "ApiKey_from_env"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with _spawn(tmp_path, "--port", str(port), "--db", ":memory:") as proc:
            out, err = proc.communicate(timeout=15)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "already in use" in lines[0] and "--port" in lines[0]
    assert out == ""


def test_parser_and_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["sim", "--no-connect-event", "--send-cap", "0", "--unreachable", "+15555550100"]
    )
    assert args.connect_event is False and args.send_cap == 0
    # Inkbox's connect flow is the default; --connect-event asks for the old one, and the
    # deprecated --no-connect-event still parses (to the default).
    assert build_parser().parse_args(["sim"]).connect_event is False
    assert build_parser().parse_args(["sim", "--connect-event"]).connect_event is True
    flags = ["sim", "--sms", "+15555550101", "--declining", "+15555550102"]
    flags += ["--send-cap-window", "60"]
    parsed = build_parser().parse_args(flags)
    assert parsed.sms == ["+15555550101"] and parsed.declining == ["+15555550102"]
    assert parsed.send_cap_window == 60.0
    assert args.unreachable == ["+15555550100"] and args.db.endswith("sim.sqlite3")
    assert args.delivery_delay == 0.2 and args.port == 8787
    assert main(["sim", "--triage-number", "12345"]) == 2
    assert "E.164" in capsys.readouterr().err
    assert main([]) == 2


def test_allow_host_and_an_owner_only_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_umask = os.umask(0o022)
    try:
        with _running(tmp_path, "--port", "0", "--allow-host", "sim.example.test") as proc:
            base_url = _banner(proc)["Base URL"]
            for host, expected in (("sim.example.test:80", 200), ("evil.example", 421)):
                request = urllib.request.Request(base_url + "/sim/v1/info", headers={"Host": host})
                try:
                    with urllib.request.urlopen(request, timeout=5) as resp:
                        status = resp.status
                except urllib.error.HTTPError as error:
                    status = error.code
                assert status == expected, host
            folder = tmp_path / ".imbot"
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            for file in folder.glob("sim.sqlite3*"):
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
    finally:
        os.umask(old_umask)
    assert main(["sim", "--allow-host", "http://sim.example.test/"]) == 2
    assert "allowed_hosts" in capsys.readouterr().err
