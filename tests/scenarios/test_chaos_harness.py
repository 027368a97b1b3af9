"""The test kit's chaos option: ``BotHarness(chaos=...)`` and ``@pytest.mark.imbot(chaos=...)``."""

from __future__ import annotations

import anyio
import pytest
from support import load_example

from imbot import Bot
from imbot.sim import Chaos, Simulator
from imbot.testing import BotHarness, Conversation
from imbot.testing.agent import local_simulator

ROUGH = "seed=3,api=30%,webhooks=30%,late_delay=0.1"


@pytest.fixture
def bot() -> Bot:
    bot: Bot = load_example("echo").bot
    return bot


async def test_the_harness_turns_chaos_on_after_set_up_and_puts_it_back(bot: Bot) -> None:
    with anyio.fail_after(30):
        async with local_simulator() as sim:
            assert not sim.chaos.enabled
            async with BotHarness(bot, simulator=sim, chaos=ROUGH) as harness:
                assert sim.chaos.enabled and sim.chaos.config == Chaos.parse(ROUGH)
                chat = harness.chat()
                for n in range(12):
                    await chat.say(f"message {n}")
                for n in range(12):
                    await chat.expect_reply(f"message {n}", timeout=10)
                await harness.settle(timeout=10)
                await chat.expect_silence(for_=0.2)
                stats = sim.chaos.stats
                assert stats["429"] + stats["502"] + stats["503"] > 0
                assert stats["duplicate"] + stats["late"] + stats["failed_first"] > 0
            # A shared simulator is left as it was found.
            assert not sim.chaos.enabled and sim.chaos.config is None


def test_a_bad_chaos_spec_fails_at_construction(bot: Bot) -> None:
    with pytest.raises(ValueError, match="unknown chaos preset 'stormy'"):
        BotHarness(bot, chaos="stormy")


@pytest.mark.imbot(chaos=ROUGH)
async def test_the_marker_runs_the_chat_on_a_bad_day(
    imbot_chat: Conversation, imbot_simulator: Simulator
) -> None:
    assert imbot_simulator.chaos.enabled
    for text in ("one", "two", "three", "four"):
        await imbot_chat.say(text)
    for text in ("one", "two", "three", "four"):
        await imbot_chat.expect_reply(text, timeout=10)
    assert imbot_simulator.chaos.stats["webhooks"] > 0
