"""The chat page's tapbacks without a colour emoji font, in a real headless Chromium.

Chromium is started with a fontconfig setup that hides every colour emoji font (as on a
Debian machine without ``fonts-noto-color-emoji``). The page must notice and draw the seven
standard tapbacks as glyphs of its own, in the picker and on the badge, instead of the
empty boxes the missing emoji would be.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, async_playwright, expect
from support import REPO_ROOT
from support.browser import CHROMIUM_ARGS, chromium_executable, running_bot

from imbot.sim import Simulator

pytestmark = pytest.mark.browser

SCREENSHOT = REPO_ROOT / "test-artifacts" / "chat-page-no-emoji-font.png"
PHONE = "+15555550143"
UI_TIMEOUT_MS = 10_000
KINDS = ("love", "like", "dislike", "laugh", "emphasize", "question", "eyes")

# The system's fonts, minus any colour emoji font.
FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <selectfont>
    <rejectfont>
      <glob>*Emoji*</glob>
      <glob>*emoji*</glob>
    </rejectfont>
  </selectfont>
</fontconfig>
"""


async def send(page: Page, text: str) -> None:
    """Type ``text`` into the composer and press the send button."""
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-send").click()


async def test_tapbacks_are_drawn_without_an_emoji_font(tmp_path: Path) -> None:
    executable = chromium_executable()
    conf = tmp_path / "fonts.conf"
    conf.write_text(FONTS_CONF, encoding="utf-8")
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with anyio.fail_after(60):
        async with (
            Simulator(db=":memory:", host="127.0.0.1", port=0, delivery_delay=0.05) as sim,
            ClientSession() as session,
            running_bot(session, sim.base_url, sim.admin_key, handle="plainbot", think=0.1),
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(
                executable_path=executable,
                args=CHROMIUM_ARGS,
                env={"FONTCONFIG_FILE": str(conf), "HOME": str(tmp_path)},
            )
            try:
                page = await browser.new_page(viewport={"width": 620, "height": 960})
                page_errors: list[str] = []
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                await page.goto(f"{sim.base_url}/?phone={PHONE}")
                await page.get_by_test_id("thread-router").click()
                await send(page, "connect @plainbot")
                await expect(page.locator("#chat-title")).to_have_text("@plainbot")
                await send(page, "hi")
                reply = page.locator("[data-testid=bubble][data-from=them]").filter(
                    has_text="echo: hi"
                )
                await reply.click()

                await expect(page.get_by_test_id("tapback-picker")).to_be_visible()
                assert await page.evaluate("document.documentElement.dataset.emoji") == "glyphs"
                for kind in KINDS:
                    option = page.get_by_test_id(f"tapback-option-{kind}")
                    await expect(option.locator(f"svg[data-glyph={kind}]")).to_be_visible()
                    box = await option.locator("svg").bounding_box()
                    assert box is not None and box["width"] >= 16, (kind, box)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT))

                await page.get_by_test_id("tapback-option-laugh").click()
                badge = reply.get_by_test_id("tapback-badge")
                await expect(badge.locator("svg[data-glyph=laugh]")).to_be_visible()
                await expect(badge).to_have_attribute("data-reaction", "laugh")
                assert page_errors == []
            finally:
                await browser.close()
