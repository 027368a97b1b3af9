"""The simulator left running on a laptop, attacked from a real headless Chromium (issue 10).

A page on another origin (``http://localhost:<port>``, cross-site to the simulator's
``http://127.0.0.1:<port>``) tries what needs no CORS preflight: a ``text/plain`` fetch, a
multipart upload and a plain HTML form, each texting ``connect @victim`` as the human. A
page whose name re-resolves to 127.0.0.1 (DNS rebinding, played with Chromium's host
resolver rules) tries to read a phone's timeline. Meanwhile the chat page's own origin
keeps working, an uploaded image still displays when opened, and an HTML upload opened
from the simulator's origin is downloaded, not run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright
from support.browser import CHROMIUM_ARGS, chromium_executable

from imbot.sim import Simulator
from imbot.testing import tiny_png

pytestmark = pytest.mark.browser

PHONE = "+15555550142"
REBOUND = "rebound.example"

ATTACK = """<!doctype html><meta charset="utf-8"><title>attack</title>
<iframe id="sink" name="sink"></iframe>
<form id="form" method="post" enctype="text/plain" target="sink" action="{sim}{path}">
<input name='{{"text": "connect @victim", "x": "' value='"}}'></form>
<script>
(async () => {{
  const results = [];
  const opts = {{method: "POST", mode: "no-cors"}};
  try {{
    await fetch("{sim}{path}", {{...opts, headers: {{"Content-Type": "text/plain"}},
                               body: JSON.stringify({{text: "connect @victim"}})}});
    results.push("text sent");
  }} catch (e) {{ results.push("text: " + e); }}
  try {{
    const form = new FormData();
    form.append("file", new Blob(["<script>alert(1)<\\/script>"], {{type: "text/html"}}), "x.html");
    await fetch("{sim}/sim/v1/media", {{...opts, body: form}});
    results.push("upload sent");
  }} catch (e) {{ results.push("upload: " + e); }}
  document.getElementById("sink").addEventListener("load", () => {{
    results.push("form sent");
    document.title = JSON.stringify(results);
  }});
  document.getElementById("form").submit();
}})();
</script>
"""


@asynccontextmanager
async def attacker_site(sim_url: str) -> AsyncIterator[int]:
    """Serve the attack page on 127.0.0.1 (free port); yield the port."""
    page = ATTACK.format(sim=sim_url, path=f"/sim/v1/phones/{PHONE}/messages")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def same_origin_post(page: Page, path: str, body: str) -> int:
    status: int = await page.evaluate(
        """async ([path, body]) => (await fetch(path, {
            method: "POST", headers: {"Content-Type": "application/json"}, body})).status""",
        [path, body],
    )
    return status


async def test_other_origins_cannot_drive_or_read_the_simulator() -> None:
    executable = chromium_executable()
    with anyio.fail_after(60):
        async with (
            Simulator(db=":memory:", host="127.0.0.1", port=0) as sim,
            attacker_site(sim.base_url) as attacker_port,
            async_playwright() as pw,
        ):
            port = sim.base_url.rsplit(":", 1)[1]
            browser = await pw.chromium.launch(
                executable_path=executable,
                args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"],
            )
            try:
                context = await browser.new_context(accept_downloads=True)
                page = await context.new_page()
                own = await context.new_page()
                await own.goto(sim.base_url + "/")
                victim = await same_origin_post(
                    own,
                    "/api/v1/identities",
                    json.dumps({"agent_handle": "victim", "imessage_enabled": True}),
                )
                assert victim == 401  # the API still needs its key, from any page

                # Another origin fires every kind of request that skips the preflight.
                await page.goto(f"http://localhost:{attacker_port}/")
                await page.wait_for_function("document.title.startsWith('[')")
                sent = json.loads(await page.title())
                assert sent == ["text sent", "upload sent", "form sent"], sent
                snapshot = sim.snapshot()
                assert snapshot["phone_items"] == [] and snapshot["messages"] == []
                assert snapshot["media"] == [] and snapshot["phones"] == []

                # A rebinding page reaches the simulator under its own name: refused.
                answer = await page.goto(f"http://{REBOUND}:{port}/sim/v1/phones/{PHONE}/timeline")
                assert answer is not None and answer.status == 421
                assert PHONE not in await page.content()

                # The chat page's own origin still texts and uploads.
                text = json.dumps({"text": "hello"})
                assert await same_origin_post(own, f"/sim/v1/phones/{PHONE}/messages", text) == 201
                png, html = await own.evaluate(
                    _UPLOAD_BOTH, list(tiny_png(30, 20, (255, 0, 0), (0, 0, 255)))
                )
                assert sim.snapshot()["phone_items"] != []

                # An image opened on its own still displays under the sandboxing CSP.
                await own.goto(png)
                await own.wait_for_function(
                    "document.images.length === 1 && document.images[0].naturalWidth === 30"
                )

                # An HTML upload opened from the simulator's origin is a download.
                await own.goto(sim.base_url + "/")
                await own.evaluate(
                    """(url) => { const a = document.createElement("a"); a.href = url;
                                  a.id = "evil"; a.textContent = "file";
                                  document.body.append(a); }""",
                    html,
                )
                async with own.expect_download() as download:
                    await own.click("#evil")
                assert (await download.value).suggested_filename == "b.html"
                assert await own.title() != "ran"
            finally:
                await browser.close()


_UPLOAD_BOTH = """async (pngBytes) => {
    const up = async (blob, name) => {
        const form = new FormData();
        form.append("file", blob, name);
        const res = await fetch("/sim/v1/media", {method: "POST", body: form});
        return (await res.json()).media_url;
    };
    return [
        await up(new Blob([new Uint8Array(pngBytes)], {type: "image/png"}), "a.png"),
        await up(new Blob(["<script>document.title='ran'<\\/script>"], {type: "text/html"}),
                 "b.html"),
    ];
}"""
