"""Media upload, serving, the 10 MiB cap and media in messages."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import anyio
from support.simapi import PHONE, Api, SimHandle, wait_until

UPLOAD = "/api/v1/imessage/media"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _form(
    data: bytes, filename: str = "pic.png", content_type: str | None = "image/png"
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    # Large bodies go as a file object: aiohttp warns (an error here) about big raw bytes.
    value: bytes | io.BytesIO = io.BytesIO(data) if len(data) > 1_000_000 else data
    if content_type is None:
        form.add_field("file", value, filename=filename)
    else:
        form.add_field("file", value, filename=filename, content_type=content_type)
    return form


async def test_upload_and_serve_back(api: Api, session: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        r = await api.call("POST", UPLOAD, data=_form(PNG))
        assert r.status == 201, r.body
        assert r.body["content_type"] == "image/png" and r.body["size"] == len(PNG)
        url = r.body["media_url"]
        assert url.startswith(api.base_url + "/media/") and url.endswith("/pic.png")
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "image/png"
            assert await resp.read() == PNG
        # A generic type is inferred from the file name.
        r = await api.call(
            "POST", UPLOAD, data=_form(b"%PDF-1.4", "invoice.pdf", "application/octet-stream")
        )
        assert r.body["content_type"] == "application/pdf"
        async with session.get(
            api.base_url + "/media/00000000-0000-4000-8000-000000000000/x"
        ) as resp:
            assert resp.status == 404


async def test_upload_limits(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(20):
        before = sim.snapshot()
        big = b"x" * (10 * 1024 * 1024 + 1)
        r = await api.call("POST", UPLOAD, data=_form(big, "big.bin", "application/octet-stream"))
        assert r.status == 413
        assert r.body["detail"]["error"] == "media_too_large"
        assert r.body["detail"]["limit_bytes"] == 10 * 1024 * 1024
        form = aiohttp.FormData()
        form.add_field("other", b"x", filename="x.bin")
        r = await api.call("POST", UPLOAD, data=form)
        assert r.status == 422 and r.body["detail"][0]["loc"] == ["body", "file"]
        r = await api.post(UPLOAD, {"file": "not multipart"})
        assert r.status == 422
        r = await api.as_key(None).call("POST", UPLOAD, data=_form(PNG))
        assert r.status == 401
        assert sim.snapshot() == before
        exact = b"x" * (10 * 1024 * 1024)
        r = await api.call(
            "POST", UPLOAD, data=_form(exact, "exact.bin", "application/octet-stream")
        )
        assert r.status == 201 and r.body["size"] == len(exact)


async def test_media_in_messages_both_ways(api: Api) -> None:
    with anyio.fail_after(10):
        await api.identity()
        conv = await api.connect(PHONE)
        up = (await api.call("POST", UPLOAD, data=_form(PNG))).body
        r = await api.post(
            "/api/v1/imessage/messages", {"conversation_id": conv, "media_urls": [up["media_url"]]}
        )
        assert r.status == 201
        media = r.body["message"]["media"]
        assert media == [{"url": up["media_url"], "content_type": "image/png", "size": len(PNG)}]
        external = "https://example.com/photo.jpg"
        r = await api.send(conv, "look", media_urls=[external])
        assert r.body["message"]["media"][0]["url"] == external
        human_up = await api.as_key(None).call("POST", "/sim/v1/media", data=_form(PNG, "me.png"))
        assert human_up.status == 201
        r = await api.text(PHONE, None, media_url=human_up.body["media_url"])
        assert r.status == 201
        assert r.body["item"]["media"][0]["content_type"] == "image/png"

        async def summary() -> dict[str, Any] | None:
            first = (await api.get("/api/v1/imessage/conversations")).body[0]
            return first if first["latest_has_media"] else None

        assert (await wait_until(summary))["latest_direction"] == "inbound"
        r = await api.text(PHONE, None)
        assert r.status == 422
