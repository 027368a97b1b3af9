"""``imbot setup`` against the real simulator (it speaks the Inkbox API), run in-process."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from imbot.cli.main import main
from imbot.errors import InvalidSignature
from imbot.events import EVENT_TYPES
from imbot.sim import Simulator
from imbot.webhooks import verify

ROUTER = "+15550100000"


@dataclass
class Receiver:
    """A plain HTTP server that records webhook deliveries."""

    url: str
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"only {len(self.deliveries)} deliveries"
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/webhook", got)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Sim:
    sim: Simulator
    portal: BlockingPortal

    @property
    def base(self) -> str:
        return self.sim.base_url

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("X-API-Key", key or self.sim.admin_key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(
            # The connect text is the first signed delivery these tests check.
            Simulator(webhook_retry_delays=(0.2, 0.5), webhook_timeout=2.0, connect_event=True)
        ) as simulator,
    ):
        handle = Sim(simulator, portal)
        handle.call("POST", "/api/v1/identities", {"agent_handle": "support"})
        monkeypatch.setenv("INKBOX_API_KEY", simulator.admin_key)
        monkeypatch.setenv("INKBOX_BASE_URL", simulator.base_url)
        yield handle


def setup(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["setup", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def subscriptions(sim: Sim) -> list[dict[str, Any]]:
    subs: list[dict[str, Any]] = sim.call("GET", "/api/v1/webhooks/subscriptions")["subscriptions"]
    return subs


def test_setup_wires_the_identity_and_the_saved_key_verifies_deliveries(
    sim: Sim, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / ".imbot" / "signing-key"
    code, out, err = setup(
        capsys, "--url", receiver.url, "--handle", "@support", "--key-file", str(key_file)
    )
    assert code == 0, err
    key = key_file.read_text().strip()
    assert key
    assert key not in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "imbot setup: @support is ready" in out
    assert "enabled (was off)" in out
    assert f"{receiver.url}  (created;" in out
    assert "new key (the identity's first)" in out
    assert f"connect @support  to  {ROUTER}" in out
    assert 'IMBOT_SIGNING_KEY="$(cat ' in out

    identity = sim.call("GET", "/api/v1/identities/support")
    assert identity["imessage_enabled"] is True
    [sub] = subscriptions(sim)
    assert sub["url"] == receiver.url
    assert sorted(sub["event_types"]) == sorted(EVENT_TYPES)

    # A human connects: the delivery is signed with the key setup saved.
    sim.call("POST", "/sim/v1/phones/+15550004001/messages", {"text": "connect @support"})
    receiver.wait(1)
    headers, body = receiver.deliveries[0]
    verify(body, headers, [key])
    assert json.loads(body)["event_type"] == "imessage.received"


def test_running_setup_again_changes_nothing(
    sim: Sim, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key"
    args = ["--url", receiver.url, "--handle", "support", "--key-file", str(key_file)]
    assert setup(capsys, *args)[0] == 0
    first = key_file.read_text()
    code, out, _ = setup(capsys, *args)
    assert code == 0
    assert "already set up" in out
    assert "kept the saved key" in out
    assert "iMessage:     enabled\n" in out
    assert key_file.read_text() == first
    assert len(subscriptions(sim)) == 1


def test_a_new_url_moves_the_subscription(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key"
    base = ["--handle", "support", "--key-file", str(key_file)]
    assert setup(capsys, "--url", "https://old.example/webhook", *base)[0] == 0
    code, out, _ = setup(capsys, "--url", "https://new.example/webhook", *base)
    assert code == 0
    assert "moved from https://old.example/webhook" in out
    [sub] = subscriptions(sim)
    assert sub["url"] == "https://new.example/webhook"


def test_without_a_saved_key_the_key_is_rotated(
    sim: Sim, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first_file, second_file = tmp_path / "a" / "key", tmp_path / "b" / "key"
    assert (
        setup(capsys, "--url", receiver.url, "--key-file", str(first_file), "--handle", "support")[
            0
        ]
        == 0
    )
    code, out, _ = setup(
        capsys, "--url", receiver.url, "--key-file", str(second_file), "--handle", "support"
    )
    assert code == 0
    assert "rotated: the identity had a key, but it is not saved here" in out
    old, new = first_file.read_text().strip(), second_file.read_text().strip()
    assert old != new
    sim.call("POST", "/sim/v1/phones/+15550004002/messages", {"text": "connect @support"})
    receiver.wait(1)
    headers, body = receiver.deliveries[0]
    verify(body, headers, [new])
    with pytest.raises(InvalidSignature):
        verify(body, headers, [old])


def test_rotate_and_print_the_key_on_request(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key"
    args = [
        "--url",
        "https://bot.example/webhook",
        "--handle",
        "support",
        "--key-file",
        str(key_file),
    ]
    assert setup(capsys, *args)[0] == 0
    before = key_file.read_text().strip()
    code, out, _ = setup(capsys, *args, "--rotate-signing-key", "--print-signing-key")
    assert code == 0
    after = key_file.read_text().strip()
    assert after != before
    assert "rotated (--rotate-signing-key)" in out
    assert f"Signing key: {after}" in out
    assert "the signing key changed; restart running bots" in out


def test_an_identity_key_needs_no_handle(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = sim.call("POST", "/sim/v1/identities/support/api-keys", {})
    monkeypatch.setenv("INKBOX_API_KEY", minted["api_key"])
    code, out, err = setup(
        capsys, "--url", "https://bot.example/webhook", "--key-file", str(tmp_path / "k")
    )
    assert code == 0, err
    assert "@support is ready" in out


def test_several_identities_need_a_handle(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.call("POST", "/api/v1/identities", {"agent_handle": "sales"})
    code, _out, err = setup(
        capsys, "--url", "https://bot.example/webhook", "--key-file", str(tmp_path / "k")
    )
    assert code == 2
    assert err.strip() == (
        "imbot setup: error: this API key sees several identities (@support, @sales); "
        "pass --handle NAME"
    )


def test_unknown_handle(sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = setup(
        capsys,
        "--url",
        "https://bot.example/webhook",
        "--handle",
        "nobody",
        "--key-file",
        str(tmp_path / "k"),
    )
    assert code == 2
    assert err.startswith("imbot setup: error: unknown handle @nobody: ")
    assert "Traceback" not in err
    assert not (tmp_path / "k").exists()
    assert subscriptions(sim) == []


def test_a_rejected_api_key(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INKBOX_API_KEY", "ApiKey_wrong")
    code, _, err = setup(capsys, "--url", "https://bot.example/webhook", "--handle", "support")
    assert code == 2
    assert err.startswith("imbot setup: error: the API key was rejected (401")
    assert "INKBOX_API_KEY" in err


def test_an_unreachable_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("INKBOX_API_KEY", "ApiKey_x")
    monkeypatch.setenv("INKBOX_BASE_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    code, _, err = setup(capsys, "--url", "https://bot.example/webhook", "--handle", "support")
    assert code == 2
    assert err.startswith("imbot setup: error: cannot reach the Inkbox API (")
    assert "INKBOX_BASE_URL" in err
    assert len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 10
