"""The simulator's chat page, driven in a real headless Chromium against a real bot.

A human opens the page, picks a number, connects to ``@testbot`` through the router (the
page then opens the agent's thread by itself) and chats: typing bubble, read receipt,
reply, a tapback (the picker covers no bubble) that reaches the bot, an attached image,
and an image reply. The screen after the attached image is saved as the README
screenshot, and the open tapback picker next to it. The connect is also followed in the
old flow, where the connect text reaches the agent, and when already connected.
"""

from __future__ import annotations

import re

import anyio
import pytest
from aiohttp import ClientSession
from playwright.async_api import Locator, Page, async_playwright, expect
from support import REPO_ROOT
from support.browser import CHROMIUM_ARGS, chromium_executable, running_bot

from imbot.sim import Simulator
from imbot.testing import tiny_png

pytestmark = pytest.mark.browser

SCREENSHOT = REPO_ROOT / "test-artifacts" / "chat-page.png"
PICKER_SCREENSHOT = REPO_ROOT / "test-artifacts" / "chat-page-picker.png"
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


async def assert_picker_covers_nothing(page: Page, tapped: Locator) -> None:
    """The open tapback picker overlaps no bubble and sits below the conversation's header."""
    picker = await page.get_by_test_id("tapback-picker").bounding_box()
    header = await page.locator("#chat-pane .chat-header").bounding_box()
    assert picker is not None and header is not None
    assert picker["y"] >= header["y"] + header["height"], (picker, header)
    bubbles = page.locator("#chat-log [data-testid=bubble]")
    target = await tapped.get_attribute("data-id")
    for index in range(await bubbles.count()):
        box = await bubbles.nth(index).bounding_box()
        if box is None:
            continue
        overlaps = (
            picker["x"] < box["x"] + box["width"]
            and box["x"] < picker["x"] + picker["width"]
            and picker["y"] < box["y"] + box["height"]
            and box["y"] < picker["y"] + picker["height"]
        )
        which = await bubbles.nth(index).get_attribute("data-id")
        assert not overlaps, f"the picker covers bubble {which} (tapped: {target})"


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
                    has_text=re.compile("Connected to @testbot")
                )
                await expect(confirmation.first).to_be_visible()

                # Once the router confirms, the page moves to the agent's thread by itself.
                await expect(page.locator("#chat-title")).to_have_text("@testbot")
                await expect(page.get_by_test_id("thread-router")).to_contain_text("testbot")

                # Chat with the bot: typing bubble, read receipt, reply.
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
                await assert_picker_covers_nothing(page, reply)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(PICKER_SCREENSHOT))
                await page.get_by_test_id("tapback-option-love").click()
                await expect(picker).to_be_hidden()
                badge = reply.get_by_test_id("tapback-badge")
                if await page.evaluate("document.documentElement.dataset.emoji") == "glyphs":
                    await expect(badge.locator("svg[data-glyph=love]")).to_have_count(1)
                else:
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

                # The README's screenshot: the conversation so far fits on the screen.
                await expect(page.get_by_test_id("receipt")).to_have_text("Read")
                await page.screenshot(path=str(SCREENSHOT))

                # Ask for an image: an inline <img> that really loads.
                await send(page, "image")
                theirs = "[data-testid=bubble][data-from=them] [data-testid=bubble-image]"
                await expect(page.locator(theirs)).to_have_count(1)
                await wait_image_loaded(page, theirs)
                await expect(page.get_by_test_id("receipt")).to_have_text("Read")

                assert page_errors == []
                assert bot.errors == []
                await context.close()
            finally:
                await browser.close()


async def test_connect_leads_to_the_agent_thread_in_the_old_flow_too() -> None:
    """With ``connect_event`` (the connect text reaches the agent), and when reconnecting."""
    executable = chromium_executable()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with anyio.fail_after(60):
        async with (
            Simulator(
                db=":memory:", host="127.0.0.1", port=0, delivery_delay=0.05, connect_event=True
            ) as sim,
            ClientSession() as session,
            running_bot(session, sim.base_url, sim.admin_key, handle="oldbot", think=0.1),
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 620, "height": 960})
                page_errors: list[str] = []
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                await page.goto(f"{sim.base_url}/?phone={PHONE}")
                title = page.locator("#chat-title")
                them = page.locator("[data-testid=bubble][data-from=them]")

                await page.get_by_test_id("thread-router").click()
                await send(page, "connect @oldbot")
                await expect(title).to_have_text("@oldbot")
                # The bot greeted on the connect text, in the thread the page moved to.
                await expect(them.filter(has_text="Hi, I'm @oldbot!")).to_be_visible()

                # Already connected: the router says so, and the page goes back to the thread.
                await page.get_by_test_id("back").click()
                await page.get_by_test_id("thread-router").click()
                await expect(title).to_have_text("Router")
                await send(page, "connect @nobody")
                await expect(them.filter(has_text="@nobody")).to_be_visible()
                await send(page, "Connect @OLDBOT")
                await expect(them.filter(has_text="already connected")).to_be_visible()
                await expect(title).to_have_text("@oldbot")
                assert page_errors == []
            finally:
                await browser.close()
