"""``imbot dev --chaos``: set-up is spared, the bot meets the bad day, the switch ends it."""

from __future__ import annotations

from pathlib import Path

from support.devserver import dev_server, echo_bot_source, http, poll, text, wait_reply

PHONE = "+15550002301"


def test_dev_sets_up_with_chaos_paused_and_the_switch_turns_it_off(tmp_path: Path) -> None:
    app = tmp_path / "echo.py"
    app.write_text(echo_bot_source("dev"))
    # Every API call answered 502: set-up (creating the identity, a POST that is not
    # retried) could not succeed unless it runs with chaos paused.
    chaos = "seed=4,api=100%,429=0,503=0"
    args = [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:", "--chaos", chaos]
    with dev_server(args, cwd=tmp_path) as dev:
        base = dev.ready()
        assert dev.wait_line(r"Chaos mode:\s+seed=4,api=1,429=0,502=1,503=0")
        status = http("GET", f"{base}/sim/v1/chaos")
        assert status["enabled"] is True and status["stats"].get("api_calls", 0) == 0
        text(base, PHONE, "connect @echo")
        text(base, PHONE, "hello")

        def failing() -> bool:
            return bool(http("GET", f"{base}/sim/v1/chaos")["stats"].get("502"))

        poll(lambda: True if failing() else None, 20, "the bot's calls to meet chaos")
        off = http("PUT", f"{base}/sim/v1/chaos", {"enabled": False})
        assert off["enabled"] is False
        # The bot retries the failed handler; with chaos off its reply goes through.
        wait_reply(base, PHONE, "dev: hello", timeout=30)
        assert dev.stop() == 0, dev.output()
