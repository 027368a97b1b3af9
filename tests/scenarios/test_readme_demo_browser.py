"""The README's demo followed to the letter, in a real headless Chromium.

The README's first command ends in ``.venv/bin/imbot dev examples/echo.py``; the line after
it says what to do on the chat page. This test starts that same ``imbot dev`` (only on free
ports and a fresh database, so it can run next to anything) and then does what that line
says and nothing else: pick a phone number, open the Router thread, text
``connect @echo``, say hello. No "back", no tap on the new thread: the page must lead from
the connect to the echo thread, where the echo of "hello" arrives.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Page, async_playwright, expect
from support import REPO_ROOT
from support.browser import CHROMIUM_ARGS, chromium_executable
from support.devserver import dev_server

pytestmark = pytest.mark.browser

README = REPO_ROOT / "README.md"
UI_TIMEOUT_MS = 15_000
FENCE = re.compile(r"^```bash\n(.*?)\n```\n\n(.*?)\n\n", re.MULTILINE | re.DOTALL)
# What the line after the first command must tell the reader, in this order; the test does
# exactly these steps.
STEPS = ("chat page", "pick any phone number", "Router", "connect @echo", "hello")


def readme_demo() -> tuple[list[str], str]:
    """The first command's ``imbot`` arguments, and the paragraph that follows it."""
    match = FENCE.search(README.read_text(encoding="utf-8"))
    assert match is not None, "the README's first command is not a ```bash fence"
    command, after = match.group(1).strip(), " ".join(match.group(2).split())
    last = shlex.split(command.split("&&")[-1])
    assert last[0] == ".venv/bin/imbot", command
    return last[1:], after


async def send(page: Page, text: str) -> None:
    """Type ``text`` into the composer and press Enter, as one does."""
    composer = page.get_by_test_id("composer-input")
    await composer.fill(text)
    await composer.press("Enter")


def test_the_readme_states_every_step_in_order() -> None:
    args, after = readme_demo()
    assert args == ["dev", "examples/echo.py"]
    positions = [after.find(step) for step in STEPS]
    assert -1 not in positions and positions == sorted(positions), (STEPS, after)


async def test_the_readme_demo_leads_from_connect_to_the_echo(tmp_path: Path) -> None:
    executable = chromium_executable()
    args, _ = readme_demo()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    isolated = ["--port", "0", "--bot-port", "0", "--db", str(tmp_path / "sim.sqlite3")]
    with dev_server([*args[1:], *isolated], cwd=REPO_ROOT) as dev, anyio.fail_after(120):
        chat_url = await anyio.to_thread.run_sync(dev.ready) + "/"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 480, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(chat_url)

                # "pick any phone number": the page asks for one the first time.
                await page.get_by_role("button", name="Make up a new number").click()
                await page.get_by_test_id("phone-save").click()
                await expect(page.get_by_test_id("phone-input")).to_be_hidden()

                # "open the Router thread and text connect @echo"
                await page.get_by_test_id("thread-router").click()
                await send(page, "connect @echo")

                # The page moves to the echo thread by itself.
                title = page.locator("#chat-title")
                await expect(title).to_have_text("@echo")

                # "say hello": the echo comes back in that thread.
                await send(page, "hello")
                theirs = page.locator("[data-testid=bubble][data-from=them] .text")
                await expect(theirs.filter(has_text=re.compile(r"^hello$"))).to_be_visible()
                await expect(title).to_have_text("@echo")
                mine = page.locator("[data-testid=bubble][data-from=me] .text")
                await expect(mine.filter(has_text=re.compile(r"^hello$"))).to_have_count(1)
                assert errors == []
            finally:
                await browser.close()
