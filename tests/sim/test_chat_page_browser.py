"""The simulator's chat page, driven in a real headless Chromium against a real bot.

A human opens the page, picks a number, connects to ``@testbot`` through the router and
chats: typing bubble, read receipt, reply, a tapback that reaches the bot, an attached
image, and an image reply. The final screen is saved as the README screenshot.
"""

from __future__ import annotations

import re

import anyio
import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, async_playwright, expect
from support import REPO_ROOT
from support.browser import CHROMIUM_ARGS, chromium_executable, running_bot

from imbot.sim import Simulator
from imbot.testing import tiny_png

pytestmark = pytest.mark.browser

SCREENSHOT = REPO_ROOT / "test-artifacts" / "chat-page.png"
PHONE = "+15555550142"
UI_TIMEOUT_MS = 10_000


async def send(page: Page, text: str) -> None:
    """Type ``text`` into the composer and press the send button."""
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-send").click()


async def wait_image_loaded(page: Page, selector: str) -> None:
    """Wait until the last image matching ``selector`` has really loaded (naturalWidth > 0)."""
    await page.wait_for_function(
        """(sel) => {
            const all = document.querySelectorAll(sel);
            const img = all[all.length - 1];
            return Boolean(img && img.complete && img.naturalWidth > 0);
        }""",
        arg=selector,
        timeout=UI_TIMEOUT_MS,
    )


async def test_chat_page_end_to_end() -> None:
    executable = chromium_executable()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with anyio.fail_after(60):
        async with (
            Simulator(db=":memory:", host="127.0.0.1", port=0, delivery_delay=0.05) as sim,
            ClientSession() as session,
            running_bot(session, sim.base_url, sim.admin_key, handle="testbot") as bot,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(
                    viewport={"width": 620, "height": 960},
                    device_scale_factor=1.5,
                    color_scheme="light",
                )
                page = await context.new_page()
                page_errors: list[str] = []
                page.on("pageerror", lambda error: page_errors.append(str(error)))

                # Pick a number (E.164 is checked in the page first).
                await page.goto(sim.base_url + "/")
                await page.get_by_test_id("phone-input").fill("555")
                await page.get_by_test_id("phone-save").click()
                await expect(page.locator("#phone-error")).to_contain_text("E.164")
                await page.get_by_test_id("phone-input").fill(PHONE)
                await page.get_by_test_id("phone-save").click()
                await expect(page.get_by_test_id("phone-input")).to_be_hidden()
                assert await page.evaluate("localStorage.getItem('imbot.sim.phone')") == PHONE

                # Connect through the router thread.
                await page.get_by_test_id("thread-router").click()
                composer = page.get_by_test_id("composer-input")
                await expect(composer).to_have_attribute("placeholder", re.compile("connect @"))
                await send(page, "connect @testbot")
                confirmation = page.locator("[data-testid=bubble][data-from=them]").filter(
                    has_text=re.compile("testbot", re.IGNORECASE)
                )
                await expect(confirmation.first).to_be_visible()

                # Chat with the bot: typing bubble, read receipt, reply.
                await page.get_by_test_id("back").click()
                await page.get_by_test_id("thread-testbot").click()
                await send(page, "hello bot")
                await expect(
                    page.locator("[data-testid=bubble][data-from=me]").filter(has_text="hello bot")
                ).to_be_visible()
                await expect(page.get_by_test_id("typing-bubble")).to_be_visible()
                await expect(page.get_by_test_id("receipt")).to_have_text("Read")
                reply = page.locator("[data-testid=bubble][data-from=them]").filter(
                    has_text="echo: hello bot"
                )
                await expect(reply).to_be_visible()
                await expect(page.get_by_test_id("typing-bubble")).to_have_count(0)

                # A tapback on the bot's message reaches the simulator and the bot.
                await reply.click()
                picker = page.get_by_test_id("tapback-picker")
                await expect(picker).to_be_visible()
                for kind in ("love", "like", "dislike", "laugh", "emphasize", "question", "eyes"):
                    await expect(page.get_by_test_id(f"tapback-option-{kind}")).to_be_visible()
                await page.get_by_test_id("tapback-option-love").click()
                await expect(picker).to_be_hidden()
                badge = reply.get_by_test_id("tapback-badge")
                await expect(badge).to_have_text("❤️")
                await expect(badge).to_have_attribute("data-reaction", "love")
                await bot.reaction_arrived.wait()
                reaction = bot.reactions[0]
                assert reaction["reaction"] == "love"
                assert reaction["remote_number"] == PHONE
                stored = await bot.call(
                    "GET", f"/api/v1/imessage/messages/{reaction['target_message_id']}"
                )
                assert stored["content"] == "echo: hello bot"
                assert [(r["reaction"], r["direction"]) for r in stored["reactions"]] == [
                    ("love", "inbound")
                ]
                assert await reply.get_attribute("data-id") == stored["id"]

                # Attach an image: upload, send, the bot gets it as media.
                await page.get_by_test_id("attach-input").set_input_files(
                    files=[
                        {
                            "name": "photo.png",
                            "mimeType": "image/png",
                            "buffer": tiny_png(160, 120, (255, 204, 0), (255, 94, 58)),
                        }
                    ]
                )
                await send(page, "my photo")
                mine = "[data-testid=bubble][data-from=me] [data-testid=bubble-image]"
                await expect(page.locator(mine)).to_have_count(1)
                await wait_image_loaded(page, mine)
                await expect(
                    page.locator("[data-testid=bubble][data-from=them]").filter(
                        has_text="echo: my photo"
                    )
                ).to_be_visible()
                photo = bot.received[-1]
                assert photo["content"] == "my photo"
                assert photo["media"][0]["content_type"] == "image/png"

                # Ask for an image: an inline <img> that really loads.
                await send(page, "image")
                theirs = "[data-testid=bubble][data-from=them] [data-testid=bubble-image]"
                await expect(page.locator(theirs)).to_have_count(1)
                await wait_image_loaded(page, theirs)
                await expect(page.get_by_test_id("receipt")).to_have_text("Read")

                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT))

                assert page_errors == []
                assert bot.errors == []
                await context.close()
            finally:
                await browser.close()
