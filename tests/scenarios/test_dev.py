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
        text(base, phone, "hello")
        wait_reply(base, phone, "fixed: hello")


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
        text(base, phone, "hello")
        # The running bot still answers with the old code: nothing was reloaded.
        wait_reply(base, phone, "same: hello")
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


def test_an_app_that_does_not_import_waits_for_a_save(tmp_path: Path) -> None:
    """Issue 14, item 10: an import error at the first start ended `imbot dev` at once."""
    app = tmp_path / "echo.py"
    app.write_text("this is not python (\n")
    phone = "+15550002005"
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        dev.wait_line(r"^imbot dev: error: cannot import .*echo\.py: SyntaxError", timeout=20)
        dev.wait_line(r"^imbot dev: waiting for a change to echo\.py; the next save tries again")
        assert dev.process.poll() is None, dev.output()
        app.write_text(echo_bot_source("fixed"))
        base = dev.ready()
        dev.wait_line(r"^imbot dev: @echo is running in the simulator")
        text(base, phone, "connect @echo")
        text(base, phone, "hello")
        wait_reply(base, phone, "fixed: hello")
    assert "imbot run:" not in dev.output()


def test_a_bot_that_fails_to_start_is_not_announced_as_running(tmp_path: Path) -> None:
    """Issue 14, item 10: after a failed start `imbot dev` said the bot was running, and the
    bot's own error was prefixed `imbot run:`."""
    app = tmp_path / "noparens.py"
    broken = echo_bot_source("x") + "\n\nbot.on_message()  # called, never applied\n"
    app.write_text(broken)
    phone = "+15550002006"
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        base = dev.ready()
        out = dev.output()
        assert "imbot dev: error: Bot.on_message(...) was called but never applied" in out
        assert "imbot run:" not in out
        assert "is running in the simulator" not in out
        assert (
            "imbot dev: the simulator is running, but @noparens did not start "
            "(exit code 2, see above); save a fix and it starts"
        ) in out
        assert "the bot stopped" not in out  # said once, in the banner
        app.write_text(echo_bot_source("fixed"))
        dev.wait_line(r"reloaded @noparens", timeout=20)
        text(base, phone, "connect @noparens")
        text(base, phone, "hello")
        wait_reply(base, phone, "fixed: hello")


def test_both_ports_taken_are_named_with_free_ones(tmp_path: Path) -> None:
    """Issue 14, item 11: with both ports taken, the error named only one."""
    import socket

    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("x"))
    with socket.socket() as sim_port, socket.socket() as bot_port:
        for taken in (sim_port, bot_port):
            taken.bind(("127.0.0.1", 0))
            taken.listen()
        ports = [str(s.getsockname()[1]) for s in (sim_port, bot_port)]
        args = [str(app), "--port", ports[0], "--bot-port", ports[1], "--db", ":memory:"]
        with dev_server(args, tmp_path) as dev:
            code = dev.process.wait(timeout=30)
            out = dev.output()
    assert code == 2, out
    match = re.search(
        rf"^imbot dev: error: ports {ports[0]} and {ports[1]} on 127\.0\.0\.1 are both in use "
        r"\(another imbot dev\?\); stop the other process or pick other ports: "
        r"e\.g\. --port (\d+) --bot-port (\d+) \(free now; 0 picks a free one\)$",
        out,
        flags=re.MULTILINE,
    )
    assert match is not None, out
    assert len({*ports, *match.groups()}) == 4
    assert "Traceback" not in out


def test_a_forgotten_await_is_named_in_the_dev_log(tmp_path: Path) -> None:
    """Issue 14, item 9: `ctx.reply(...)` without `await` sends nothing; the log says why."""
    app = tmp_path / "forgetful.py"
    app.write_text(
        "from imbot import Bot\n\nbot = Bot()\n\n\n@bot.on_message()\nasync def echo(ctx):\n"
        "    ctx.reply(ctx.text)\n"
    )
    phone = "+15550002007"
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        base = dev.ready()
        text(base, phone, "connect @forgetful")
        text(base, phone, "hello")
        line = dev.wait_line(r"did you forget `await`\?", timeout=20).string
        assert "Context.reply" in line
        assert "forgetful.py:8" in line
        assert "ctx.reply(ctx.text)" in line
    assert "RuntimeWarning" not in dev.output()  # said once, in the bot's log


def test_a_fix_in_a_module_next_to_the_app_is_seen_too(tmp_path: Path) -> None:
    """The APP imports a helper that imports fine but fails when called: the fix is in the
    helper, which must be read again, not taken from the first try's import."""
    helper = tmp_path / "helpers.py"
    helper.write_text("def greeting():\n    raise RuntimeError('not yet')\n")
    app = tmp_path / "echo.py"
    app.write_text("import helpers\n\nGREETING = helpers.greeting()\n\n" + echo_bot_source("ok"))
    with dev_server(
        [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:"], tmp_path
    ) as dev:
        dev.wait_line(r"^imbot dev: error: cannot import .*RuntimeError: not yet", timeout=20)
        dev.wait_line(r"^imbot dev: waiting for a change to echo\.py")
        helper.write_text("def greeting():\n    return 'hi'\n")
        dev.ready()
        dev.wait_line(r"^imbot dev: @echo is running in the simulator")
