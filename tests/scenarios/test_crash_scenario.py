"""A bot process killed mid-burst and restarted handles every event and sends nothing twice.

The bot runs as a real process (``bot.run`` on a fixed port, settings from the environment,
a durable SQLite inbox). ``kill -9`` gives it no chance to clean up; after the restart it
resumes the events it had accepted, and the simulator redelivers the ones it could not.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from collections import Counter
from typing import IO, Any

import aiohttp
import anyio
import anyio.abc
from support import free_port

from imbot.testing import SimAgent, eventually, simulated

BOT_SCRIPT = """
import os

import anyio

from imbot import Bot, Context, MessageReceived

bot = Bot(inbox=os.environ["BOT_INBOX"], drain_timeout=float(os.environ["BOT_DRAIN"]))
DELAY = float(os.environ["BOT_DELAY"])


@bot.on_message()
async def answer(ctx: Context[MessageReceived]) -> None:
    if ctx.text.startswith("connect"):
        return
    await anyio.sleep(DELAY)
    await ctx.reply(f"re: {ctx.text}")


bot.run(port=int(os.environ["BOT_PORT"]))
"""


class BotProcess:
    """The bot script as a child process, with its logs in a file."""

    def __init__(
        self, agent: SimAgent, tmp: pathlib.Path, *, delay: float, drain: float = 30
    ) -> None:
        self.script = tmp / "bot_main.py"
        self.script.write_text(BOT_SCRIPT)
        self.log_path = tmp / "bot.log"
        self.port = free_port()
        self.env = {
            **os.environ,
            "INKBOX_API_KEY": agent.api_key,
            "INKBOX_BASE_URL": agent.sim.base_url,
            "IMBOT_SIGNING_KEY": agent.signing_key,
            "IMBOT_LOG_FORMAT": "json",
            "BOT_INBOX": f"sqlite:///{tmp}/inbox.db",
            "BOT_PORT": str(self.port),
            "BOT_DELAY": str(delay),
            "BOT_DRAIN": str(drain),
        }
        self.process: anyio.abc.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = await anyio.open_process(
            [sys.executable, str(self.script)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        await eventually(self.health, lambda h: h is not None and h["running"], timeout=20)

    async def health(self) -> dict[str, Any] | None:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{self.port}/healthz") as response,
            ):
                data: dict[str, Any] = await response.json()
                return data
        except aiohttp.ClientError:
            return None

    async def stop(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = await self.process.wait()
        assert self._log is not None
        self._log.close()
        return code

    def logs(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # not a log line (or one still being written)
        return [entry for entry in found if isinstance(entry, dict)]


async def test_kill_9_mid_burst_then_restart_handles_everything_exactly_once(
    tmp_path: pathlib.Path,
) -> None:
    phones = ["+15555550141", "+15555550142"]
    per_phone = 15
    with anyio.fail_after(90):
        async with simulated("sturdy") as agent:
            bot = BotProcess(agent, tmp_path, delay=0.1)
            await agent.subscribe(bot.port)
            await bot.start()
            try:
                for number in phones:
                    await agent.connect(number)

                async def burst(number: str) -> None:
                    for n in range(per_phone):
                        await agent.text(number, f"{number[-2:]}-{n}")

                async with anyio.create_task_group() as tg:
                    for number in phones:
                        tg.start_soon(burst, number)
                    # Kill as soon as some answers are out: the rest are in flight,
                    # accepted-but-unhandled, or not yet delivered.
                    await eventually(
                        lambda: agent.agent_texts(phones[0]), lambda t: len(t) >= 3, timeout=20
                    )
                    assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
                answered_before = sum([len(await agent.agent_texts(p)) for p in phones])
                assert answered_before < per_phone * len(phones)

                await bot.start()
                for number in phones:
                    expected = {f"re: {number[-2:]}-{n}" for n in range(per_phone)}
                    await eventually(
                        lambda number=number: agent.agent_texts(number),
                        lambda texts, expected=expected: expected <= set(texts),
                        timeout=40,
                        interval=0.1,
                    )
            finally:
                if bot.process is not None and bot.process.returncode is None:
                    await bot.stop(signal.SIGKILL)

            for number in phones:
                counts = Counter(await agent.agent_texts(number))
                assert all(count == 1 for count in counts.values()), counts
                assert len(counts) == per_phone
            resumed = [
                e for e in bot.logs() if e["event"] == "resuming events accepted before a restart"
            ]
            assert resumed and resumed[0]["count"] >= 1  # the restart did resume accepted events
            outbound = Counter(m.text for m in await agent.outbound())
            assert all(count == 1 for count in outbound.values())
            assert sum(outbound.values()) == per_phone * len(phones)


async def test_sigterm_lets_the_running_handler_finish_then_exits_cleanly(
    tmp_path: pathlib.Path,
) -> None:
    number = "+15555550143"
    with anyio.fail_after(60):
        async with simulated("polite") as agent:
            bot = BotProcess(agent, tmp_path, delay=1.0)
            await agent.subscribe(bot.port)
            await bot.start()
            try:
                await agent.connect(number)
                await agent.text(number, "slow one")
                await eventually(bot.health, lambda h: h is not None and h["in_flight"] == 1)
                assert await bot.stop(signal.SIGTERM) == 0
            finally:
                if bot.process is not None and bot.process.returncode is None:
                    await bot.stop(signal.SIGKILL)
            assert await agent.agent_texts(number) == ["re: slow one"]
            events = [entry["event"] for entry in bot.logs()]
            assert "stopping: finishing running handlers" in events
            assert "bot started" in events


async def test_a_second_signal_cancels_handlers_that_would_outlive_the_patience(
    tmp_path: pathlib.Path,
) -> None:
    number = "+15555550144"
    with anyio.fail_after(60):
        async with simulated("stubborn") as agent:
            bot = BotProcess(agent, tmp_path, delay=60.0, drain=60.0)
            await agent.subscribe(bot.port)
            await bot.start()
            try:
                await agent.connect(number)
                await agent.text(number, "never finishes")
                await eventually(bot.health, lambda h: h is not None and h["in_flight"] == 1)
                assert bot.process is not None
                bot.process.send_signal(signal.SIGTERM)
                await eventually(
                    lambda: snapshot_events(bot),
                    lambda events: "stopping: finishing running handlers" in events,
                )
                with anyio.fail_after(10):  # far less than the 60 s drain timeout
                    assert await bot.stop(signal.SIGTERM) == 0
            finally:
                if bot.process is not None and bot.process.returncode is None:
                    await bot.stop(signal.SIGKILL)
            events = [entry["event"] for entry in bot.logs()]
            assert "second signal: cancelling running handlers" in events
            assert await agent.agent_texts(number) == []


async def snapshot_events(bot: BotProcess) -> list[str]:
    return [entry["event"] for entry in bot.logs()]
