"""``imbot run`` as a subprocess: serves the webhook, checks signatures, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from imbot.webhooks import sign

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_run_test"
EVENT = json.loads((REPO_ROOT / "tests" / "fixtures" / "wire_examples.json").read_text())[
    "examples"
]["event_sent"]

BOT = """\
from imbot import Bot

bot = Bot()


@bot.on_message()
async def echo(ctx):
    await ctx.reply(ctx.text)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INKBOX_", "IMBOT_"))}
    base["PYTHONPATH"] = str(REPO_ROOT)
    base.update(extra)
    return base


def start(app: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "imbot", "run", str(app), "--port", str(port), "--path", "/hooks"],
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_run_serves_the_webhook_and_stops_cleanly(tmp_path: Path) -> None:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    port = free_port()
    started = time.monotonic()
    process = start(
        app,
        port,
        INKBOX_API_KEY="ApiKey_test",
        INKBOX_BASE_URL=f"http://127.0.0.1:{free_port()}",
        IMBOT_SIGNING_KEY=SECRET,
    )
    try:
        deadline = started + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "imbot run never listened"
                time.sleep(0.01)
        listening_after = time.monotonic() - started

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        body = json.dumps(EVENT).encode()
        url = f"http://127.0.0.1:{port}/hooks"
        assert post(url, body, sign(body, SECRET)) == 200
        assert post(url, body, sign(body, "whsec_wrong")) == 401

        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Generous for a loaded CI box; the benchmark holds the real target (0.6 s).
    assert listening_after < 5


def test_run_without_a_signing_key_is_one_line(tmp_path: Path) -> None:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    done = subprocess.run(
        [sys.executable, "-m", "imbot", "run", str(app)],
        env=env(INKBOX_API_KEY="ApiKey_test"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("imbot run: error: no webhook signing key: set IMBOT_SIGNING_KEY")
    assert "imbot setup --url" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_without_an_api_key_is_one_line(tmp_path: Path) -> None:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    home = tmp_path / "home"  # conftest made it; it has no ~/.inkbox/config
    done = subprocess.run(
        [sys.executable, "-m", "imbot", "run", str(app)],
        env=env(IMBOT_SIGNING_KEY=SECRET, HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "imbot run: error: no Inkbox API key: set INKBOX_API_KEY, pass api_key=..., or add "
        f"'api_key = ApiKey_...' to {home}/.inkbox/config"
    ]


def test_run_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start(
            app,
            port,
            INKBOX_API_KEY="ApiKey_test",
            INKBOX_BASE_URL="http://127.0.0.1:9",
            IMBOT_SIGNING_KEY=SECRET,
        )
        try:
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("imbot run: error:")]
    assert errors == [
        f"imbot run: error: port {port} on 127.0.0.1 is already in use; stop the other process "
        "or pick another port with --port (--port 0 picks a free one)"
    ]
    assert "Traceback" not in err
