"""The chat page's "Bad day" switch, in a real headless Chromium: it turns chaos mode on and off."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from playwright.async_api import async_playwright, expect
from support.browser import CHROMIUM_ARGS, chromium_executable

from imbot.sim import Simulator

pytestmark = pytest.mark.browser

PHONE = "+15555550177"
UI_TIMEOUT_MS = 10_000


async def test_the_switch_turns_chaos_on_and_off(tmp_path: Path) -> None:
    executable = chromium_executable()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with anyio.fail_after(60):
        async with Simulator() as sim, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 620, "height": 960})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{sim.base_url}/?phone={PHONE}")
                panel = page.get_by_test_id("chaos")
                switch = page.get_by_test_id("chaos-switch")
                await expect(panel).to_be_visible()
                await expect(switch).not_to_be_checked()
                await expect(page.locator("#chaos-note")).to_contain_text("Off")

                await page.locator(".chaos-row").click()
                await expect(switch).to_be_checked()
                await expect(page.locator("#chaos-note")).to_contain_text("On (seed=0")
                assert sim.chaos.enabled and sim.chaos.config is not None

                sim.chaos.take_down(30)
                await page.reload()
                await expect(page.locator("#chaos-note")).to_contain_text("API down for")
                sim.chaos.bring_up()
                await page.screenshot(path=str(tmp_path / "chaos-switch.png"))
                if shots := os.environ.get("IMBOT_SCREENSHOTS"):
                    await page.screenshot(path=str(Path(shots) / "chaos-switch.png"))

                await switch.press("Space")  # the keyboard works too
                await expect(switch).not_to_be_checked()
                await expect(page.locator("#chaos-note")).to_contain_text("Off")
                assert not sim.chaos.enabled
                assert errors == []
            finally:
                await browser.close()
