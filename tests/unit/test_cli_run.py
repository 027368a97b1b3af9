"""``imbot run`` as a subprocess: serves the webhook, checks signatures, stops on SIGTERM.

Before serving it names every missing setting at once and checks the API key and base URL
with one call: against the real simulator (a key it accepts, one it rejects) and a closed port.
"""

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

import anyio
from support import wait_listening

from imbot.sim import Chaos
from imbot.testing import simulated
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


async def test_run_serves_the_webhook_and_stops_cleanly(tmp_path: Path) -> None:
    async with simulated("runbot") as agent:
        api = {"INKBOX_API_KEY": agent.api_key, "INKBOX_BASE_URL": agent.sim.base_url}
        # The simulator answers the start-up check from this loop: run the rest in a thread.
        await anyio.to_thread.run_sync(_serve_and_stop, tmp_path, api)


def _serve_and_stop(tmp_path: Path, api: dict[str, str]) -> None:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    port = free_port()
    started = time.monotonic()
    process = start(app, port, IMBOT_SIGNING_KEY=SECRET, **api)
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


def test_run_with_nothing_configured_names_everything_missing_at_once(tmp_path: Path) -> None:
    """Issue 14, item 7: the API key was reported only after the signing key was fixed."""
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "imbot", "run", str(app)],
        env=env(HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "imbot run: error: no Inkbox API key: set INKBOX_API_KEY, pass api_key=..., or add "
        f"'api_key = ApiKey_...' to {home}/.inkbox/config",
        "imbot run: error: no webhook signing key: set IMBOT_SIGNING_KEY (several keys "
        "comma-separated while rotating) or pass Bot(signing_key=...). Create one with "
        "POST /api/v1/identities/{handle}/signing-key (client.create_signing_key); "
        "`imbot setup --url https://<public>/webhook` saves one",
    ]


async def _run_until_exit(app: Path, port: int, **extra: str) -> tuple[int, str, float]:
    """Run `imbot run` to its end (it must not serve); its code, stderr and duration."""
    started = time.monotonic()
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "imbot", "run", str(app), "--port", str(port)],
            env=env(IMBOT_SIGNING_KEY=SECRET, **extra),
            check=False,
        )
    return done.returncode, done.stderr.decode(), time.monotonic() - started


async def test_run_refuses_a_key_the_api_rejects_before_serving(tmp_path: Path) -> None:
    """Issue 14, item 7: a bogus key started a bot that could never reply."""
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    port = free_port()
    async with simulated("runbot") as agent:
        code, err, _ = await _run_until_exit(
            app, port, INKBOX_API_KEY="ApiKey_bogus", INKBOX_BASE_URL=agent.sim.base_url
        )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("imbot run: error: the API key was rejected (")
    assert lines[0].endswith("); check INKBOX_API_KEY (or api_key in ~/.inkbox/config)")
    assert "ApiKey_bogus" not in err


async def test_run_refuses_an_api_it_cannot_reach_before_serving(tmp_path: Path) -> None:
    """Issue 14, item 7: `INKBOX_BASE_URL=http://127.0.0.1:1` started and served."""
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        code, err, took = await _run_until_exit(
            app, free_port(), INKBOX_API_KEY="ApiKey_test", INKBOX_BASE_URL=url
        )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("imbot run: error: cannot reach the Inkbox API (")
    assert lines[0].endswith("); check INKBOX_BASE_URL and your network")
    assert took < 15  # refused at once, retried once: no long wait


async def test_run_serves_anyway_when_the_check_meets_a_passing_failure(tmp_path: Path) -> None:
    """A 503 at start may be a blip (the handlers retry those): a warning, and it serves."""
    async with simulated("runbot") as agent:
        agent.sim.chaos.configure(Chaos(api_errors=1.0, error_weights=(0.0, 0.0, 1.0)))
        api = {"INKBOX_API_KEY": agent.api_key, "INKBOX_BASE_URL": agent.sim.base_url}
        err = await anyio.to_thread.run_sync(_serve_briefly, tmp_path, api)
    warnings = [line for line in err.splitlines() if line.startswith("imbot run: warning:")]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("imbot run: warning: could not check the API key at start (")
    assert "503" in warnings[0] and warnings[0].endswith("; serving anyway")


def _serve_briefly(tmp_path: Path, api: dict[str, str]) -> str:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    port = free_port()
    process = start(app, port, IMBOT_SIGNING_KEY=SECRET, **api)
    try:
        wait_listening(port, process)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        return err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


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
