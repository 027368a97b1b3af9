"""``imbot dev`` end to end: a real subprocess with the simulator and a reloadable bot child."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.devserver import (
    dev_server,
    echo_bot_source,
    http,
    poll,
    port_closed,
    text,
    timeline,
    wait_reply,
)

ADMIN_KEY = "ApiKey_dev_test_admin"


def _bot_port(banner_line: str) -> int:
    match = re.search(r":(\d+)/webhook", banner_line)
    assert match is not None
    return int(match.group(1))


def test_hot_reload_keeps_the_conversation(tmp_path: Path) -> None:
    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("v1"))
    phone = "+15550002001"
    args = [str(app), "--port", "0", "--bot-port", "0", "--db", str(tmp_path / "sim.sqlite3")]
    with dev_server(args, cwd=tmp_path) as dev:
        base = dev.ready()
        assert dev.wait_line(r"Text:\s+connect @echo\s+to \+1\d+")
        bot_port = _bot_port(dev.wait_line(r"Bot webhook:.*").group(0))

        text(base, phone, "connect @echo")
        text(base, phone, "hello")
        first = wait_reply(base, phone, "v1: hello")

        app.write_text(echo_bot_source("v2"))
        dev.wait_line(r"echo\.py changed; reloading @echo", timeout=10)
        dev.wait_line(r"reloaded @echo in [\d.]+ s", timeout=20)

        text(base, phone, "again")
        second = wait_reply(base, phone, "v2: again")
        assert second["conversation_id"] == first["conversation_id"]
        texts = [item["text"] for item in timeline(base, phone)["items"]]
        assert texts.index("v1: hello") < texts.index("again") < texts.index("v2: again")

        code = dev.stop()
        assert code == 0, dev.output()
        assert "imbot dev: stopped" in dev.output()
        poll(lambda: True if port_closed(bot_port) else None, 10, "the bot child to exit")


def test_a_broken_edit_is_reported_and_the_next_save_recovers(tmp_path: Path) -> None:
    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("ok"))
    phone = "+15550002002"
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        base = dev.ready()
        app.write_text("this is not python (\n")
        dev.wait_line(r"cannot import .*echo\.py: SyntaxError", timeout=20)
        dev.wait_line(r"the bot stopped \(exit code 2\).*restarts when you save", timeout=20)
        app.write_text(echo_bot_source("fixed"))
        dev.wait_line(r"reloaded @echo", timeout=20)
        text(base, phone, "connect @echo")
        wait_reply(base, phone, "fixed: connect @echo")


def test_rerun_with_the_same_db_reuses_identity_and_subscription(tmp_path: Path) -> None:
    app = tmp_path / "helper_bot.py"
    app.write_text(echo_bot_source("hi"))
    db = tmp_path / "state" / "sim.sqlite3"
    phone = "+15550002003"
    headers = {"X-API-Key": ADMIN_KEY}
    conversation_ids = []
    for round_ in range(2):
        # A new free bot port each time: the subscription moves, it is not duplicated.
        args = [str(app), "--port", "0", "--bot-port", "0", "--db", str(db)]
        with dev_server([*args, "--admin-key", ADMIN_KEY], cwd=tmp_path) as dev:
            base = dev.ready()
            dev.wait_line(r"@helper_bot is running in the simulator")
            webhook = dev.wait_line(r"Bot webhook:\s+(\S+)").group(1)
            if round_ == 0:
                text(base, phone, "connect @helper_bot")
            text(base, phone, f"round {round_}")
            conversation_ids.append(
                wait_reply(base, phone, f"hi: round {round_}")["conversation_id"]
            )
            identities = http("GET", f"{base}/api/v1/identities", headers=headers)
            assert [i["agent_handle"] for i in identities] == ["helper_bot"]
            assert identities[0]["imessage_enabled"] is True
            subs = http("GET", f"{base}/api/v1/webhooks/subscriptions", headers=headers)
            assert len(subs["subscriptions"]) == 1
            assert subs["subscriptions"][0]["url"] == webhook
            assert sorted(subs["subscriptions"][0]["event_types"]) == sorted(
                [
                    "imessage.received",
                    "imessage.reaction_received",
                    "imessage.sent",
                    "imessage.delivered",
                    "imessage.delivery_failed",
                ]
            )
            assert dev.stop() == 0
    assert conversation_ids[0] == conversation_ids[1]
    assert db.is_file()


def test_the_bots_handle_comes_from_the_bot_when_it_has_one(tmp_path: Path) -> None:
    app = tmp_path / "main.py"
    app.write_text(echo_bot_source("yo").replace("Bot()", 'Bot(handle="concierge")'))
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        base = dev.ready()
        dev.wait_line(r"connect @concierge")
        assert http("GET", f"{base}/sim/v1/info")["handles"] == ["concierge"]


def test_no_reload_leaves_the_bot_alone(tmp_path: Path) -> None:
    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("same"))
    phone = "+15550002004"
    args = [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:", "--no-reload"]
    with dev_server(args, tmp_path) as dev:
        base = dev.ready()
        app.write_text(echo_bot_source("changed"))
        text(base, phone, "connect @echo")
        # The running bot still answers with the old code: nothing was reloaded.
        wait_reply(base, phone, "same: connect @echo")
        assert "reloading" not in dev.output()


@pytest.mark.parametrize("flag", ["--port", "--bot-port"])
def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path, flag: str) -> None:
    import socket

    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("x"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        other = "--bot-port" if flag == "--port" else "--port"
        args = [str(app), flag, port, other, "0", "--db", ":memory:"]
        with dev_server(args, tmp_path) as dev:
            code = dev.process.wait(timeout=30)
            out = dev.output()
    assert code == 2, out
    assert f"port {port} on 127.0.0.1 is already in use" in out
    assert "Traceback" not in out


def test_the_bot_child_exits_when_imbot_dev_is_killed(tmp_path: Path) -> None:
    import os
    import signal

    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("x"))
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        dev.ready()
        bot_port = _bot_port(dev.wait_line(r"Bot webhook:.*").group(0))
        assert not port_closed(bot_port)
        os.kill(dev.process.pid, signal.SIGKILL)  # no chance to clean up
        dev.process.wait(timeout=10)
        poll(lambda: True if port_closed(bot_port) else None, 10, "the orphaned bot to exit")
