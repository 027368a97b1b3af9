"""``--store URL`` on ``imbot dev``: the bot it runs keeps its events and state there."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.devserver import dev_server, text, wait_reply

from tests.support.redis_server import RedisServer

_COUNTER = """\
from imbot import Bot

bot = Bot()


@bot.on_message()
async def count(ctx):
    ctx.state["seen"] = ctx.state.get("seen", 0) + 1
    await ctx.reply(f"seen {ctx.state['seen']}")
"""


@pytest.mark.slow
def test_imbot_dev_store_puts_the_bots_state_in_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    app = tmp_path / "counter.py"
    app.write_text(_COUNTER)
    phone = "+15550002101"
    args = [str(app), "--port", "0", "--bot-port", "0", "--db", ":memory:", "--no-reload"]
    with dev_server([*args, "--store", f"{redis_server.url}?prefix=devtest"], tmp_path) as dev:
        base = dev.ready()
        text(base, phone, "connect @counter")
        text(base, phone, "one")
        wait_reply(base, phone, "seen 1")
        text(base, phone, "two")
        wait_reply(base, phone, "seen 2")
    # The state lives in Redis under the URL's prefix, not in the bot's memory.
    keys = redis_server.command("KEYS", "devtest:*")
    assert b"devtest:" in keys, keys
    assert redis_server.command("KEYS", "imbot:*") == b"*0\r\n"  # none under the default one
