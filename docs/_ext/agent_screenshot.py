"""Make docs/assets/agent-chat.png: examples/agent.py in the simulator's chat page.

Run it from the repository root, where `.venv` has imbot's dev extra and Debian's Chromium is
installed (`apt-get install chromium`):

    .venv/bin/python docs/_ext/agent_screenshot.py [OUTPUT.png]

It starts a simulator on a free loopback port, runs the example offline (its scripted
model, whatever OPENAI_API_KEY says), opens the chat page in headless Chromium, connects to
@agent, sends three quick texts (answered once) and asks for a story (told in bubbles),
then saves the screen.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

from imbot.sim import Simulator
from imbot.testing import BotHarness

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "assets" / "agent-chat.png"
PHONE = "+15555550142"
BURST = ("hey", "quick q", "what's the weather in Paris?")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


def load_agent_example() -> object:
    """Import examples/agent.py offline (the model is chosen when it is imported)."""
    os.environ.pop("OPENAI_API_KEY", None)
    spec = importlib.util.spec_from_file_location("agent_example", ROOT / "examples" / "agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-send").click()


async def main(output: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")
    example = load_agent_example()
    expect.set_options(timeout=15_000)
    async with (
        Simulator(db=":memory:", host="127.0.0.1", port=0) as sim,
        BotHarness(example.bot, simulator=sim, handle="agent", connect=False),  # type: ignore[attr-defined]
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 560, "height": 940}, device_scale_factor=1.5, color_scheme="light"
        )
        page = await context.new_page()
        await page.goto(sim.base_url + "/")
        await page.get_by_test_id("phone-input").fill(PHONE)
        await page.get_by_test_id("phone-save").click()
        await page.get_by_test_id("thread-router").click()
        await send(page, "connect @agent")
        await expect(page.locator("#chat-title")).to_have_text("@agent")

        theirs = page.locator("[data-testid=bubble][data-from=them]:not([data-system])")
        for text in BURST:
            await send(page, text)
            await page.wait_for_timeout(250)  # a person typing the next one
        await expect(theirs.filter(has_text="Got your 3 texts at once")).to_have_count(1)

        await send(page, "tell me a story")
        await expect(theirs.filter(has_text="written in her notebook again.")).to_be_visible()
        await expect(page.get_by_test_id("typing-bubble")).to_have_count(0)
        await page.wait_for_timeout(300)  # the last bubble's animation
        output.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(output))
        await browser.close()
    print(f"wrote {output}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT))
