"""The README's demo, in a real headless Chromium: `imbot dev examples/echo.py`, then chat.

Starts the demo exactly as the README's first command ends (`imbot dev examples/echo.py`,
on free ports), opens the chat page it prints, connects to @echo and gets the echo back.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Page, async_playwright, expect
from support import REPO_ROOT
from support.devserver import dev_server

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
UI_TIMEOUT_MS = 15_000


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (apt-get install chromium): the demo is not driven"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-send").click()


async def test_readme_demo_in_a_browser(tmp_path: Path) -> None:
    executable = chromium()
    assert (REPO_ROOT / "examples" / "echo.py").is_file()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    args = ["examples/echo.py", "--port", "0", "--bot-port", "0", "--db", str(tmp_path / "sim.db")]
    with dev_server(args, cwd=REPO_ROOT) as dev, anyio.fail_after(90):
        chat_url = await anyio.to_thread.run_sync(dev.ready) + "/"
        banner = dev.output()
        assert re.search(r"Text:\s+connect @echo\s+to \+1\d+", banner), banner

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 480, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(chat_url)

                await page.get_by_test_id("phone-input").fill("+15555550199")
                await page.get_by_test_id("phone-save").click()
                await expect(page.get_by_test_id("phone-input")).to_be_hidden()

                await page.get_by_test_id("thread-router").click()
                await send(page, "connect @echo")
                them = page.locator("[data-testid=bubble][data-from=them]")
                await expect(them.filter(has_text=re.compile("Connected to @echo"))).to_be_visible()

                await page.get_by_test_id("back").click()
                await page.get_by_test_id("thread-echo").click()
                await send(page, "hello from the README")
                await expect(them.filter(has_text="hello from the README")).to_be_visible()
                assert errors == []
            finally:
                await browser.close()
