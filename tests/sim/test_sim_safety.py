"""The simulator is safe to leave running on a laptop (issue 10, items 7-11).

Only loopback ``Host`` names are served (a DNS-rebinding page carries its own name);
writes from another origin are refused while clients that send no ``Origin`` (the SDK,
imbot's client, curl) pass; uploads are served sandboxed; a malformed multipart header is a
``422``; the database holding the keys is owner-only; webhooks do not follow redirects.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from support.simapi import PHONE, Api, SimFactory, SimHandle, subscribe, wait_until

TIMELINE = f"/sim/v1/phones/{PHONE}/timeline"
MESSAGES = f"/sim/v1/phones/{PHONE}/messages"


async def _items(api: Api) -> list[dict[str, Any]]:
    r = await api.get(TIMELINE)
    assert r.status == 200, r.body
    return list(r.body["items"])


# Item 7: Host names


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8787", "127.0.0.1.evil.example", "a:b:c", ""]
)
async def test_foreign_host_is_refused(api: Api, host: str) -> None:
    with anyio.fail_after(10):
        await api.identity()
        for method, path in (("GET", TIMELINE), ("GET", "/"), ("POST", MESSAGES)):
            r = await api.call(method, path, json_body={"text": "hi"}, headers={"Host": host})
            assert r.status == 421, (method, path, r.body)
            assert r.body["detail"]["error"] == "host_not_allowed"
        assert await _items(api) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost.", "[::1]", "127.0.0.2"])
async def test_loopback_hosts_are_served_with_any_port(api: Api, host: str) -> None:
    with anyio.fail_after(10):
        for suffix in ("", ":1", ":8787"):
            r = await api.get(TIMELINE, headers={"Host": host + suffix})
            assert r.status == 200, (host + suffix, r.body)


async def test_configured_hosts_are_served(
    make_sim: SimFactory, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        sim = make_sim(allowed_hosts=["sim.example.test", "[fd00::1]:80"])
        api = Api(session, sim.base_url, sim.admin_key)
        for host in ("sim.example.test", "SIM.example.test:8787", "[fd00:0::1]"):
            assert (await api.get(TIMELINE, headers={"Host": host})).status == 200, host
        assert (await api.get(TIMELINE, headers={"Host": "other.example.test"})).status == 421
        anything = make_sim(allowed_hosts=["*"])
        open_api = Api(session, anything.base_url, anything.admin_key)
        assert (await open_api.get(TIMELINE, headers={"Host": "evil.example"})).status == 200


# Item 7: cross-origin writes


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        # Another port on the same machine is another origin (another local app).
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_cross_origin_writes_are_refused(
    api: Api, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    with anyio.fail_after(10):
        await api.identity("victim")
        form = aiohttp.FormData()
        form.add_field("file", b"<svg/>", filename="x.svg", content_type="image/svg+xml")
        attempts: list[tuple[str, str, Any]] = [
            ("POST", MESSAGES, b'{"text": "connect @victim"}'),
            ("POST", "/sim/v1/media", form),
            ("PUT", f"/sim/v1/phones/{PHONE}", b'{"unreachable": true}'),
        ]
        for method, path, data in attempts:
            # A text/plain or multipart body passes a browser with no preflight.
            sent = {"Content-Type": "text/plain", **headers} if isinstance(data, bytes) else headers
            r = await api.call(method, path, data=data, headers=sent)
            assert r.status == 403, (method, path, r.body)
            assert r.body["detail"]["error"] == "cross_origin_refused"
        assert await _items(api) == []
        info = (await api.get("/sim/v1/info")).body
        assert info["phones"] == []


async def test_same_origin_and_originless_writes_pass(api: Api, sim: SimHandle) -> None:
    with anyio.fail_after(10):
        await api.identity("victim")
        own = {"Origin": sim.base_url, "Sec-Fetch-Site": "same-origin"}
        assert (await api.text(PHONE, "connect @victim")).status == 201  # no Origin: the SDK
        r = await api.post(MESSAGES, {"text": "again"}, headers=own)
        assert r.status == 201, r.body
        port = sim.base_url.rsplit(":", 1)[1]
        r = await api.post(
            MESSAGES,
            {"text": "by name"},
            headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
        )
        assert r.status == 201, r.body
        mine = [i["text"] for i in await _items(api) if i["from"] == "me"]
        assert mine == ["connect @victim", "again", "by name"]


# Item 8: uploads served sandboxed


async def _upload(api: Api, data: bytes, filename: str, content_type: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    r = await api.call("POST", "/sim/v1/media", data=form)
    assert r.status == 201, r.body
    return str(r.body["media_url"])


SCRIPT = b"<script>fetch('/sim/v1/phones/+15555550100/messages',{method:'POST'})</script>"


@pytest.mark.parametrize(
    ("filename", "content_type", "attachment"),
    [
        ("page.html", "text/html", True),
        ("logo.svg", "image/svg+xml", True),
        ("data.xml", "application/xml", True),
        ("odd.img", "image/x-thing+xml", True),
        ("notes.txt", "text/plain", True),
        ("photo.png", "image/png", False),
        ("clip.mp4", "video/mp4", False),
        ("voice.m4a", "audio/mp4", False),
    ],
)
async def test_media_is_served_sandboxed(
    api: Api, session: aiohttp.ClientSession, filename: str, content_type: str, attachment: bool
) -> None:
    with anyio.fail_after(10):
        url = await _upload(api, SCRIPT, filename, content_type)
        async with session.get(url) as resp:
            assert resp.status == 200
            assert await resp.read() == SCRIPT
            assert resp.headers["Content-Type"].startswith(content_type)
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            csp = resp.headers["Content-Security-Policy"]
            assert "sandbox" in csp.split(";")[0] and "default-src 'none'" in csp
            assert "script-src" not in csp
            disposition = resp.headers.get("Content-Disposition")
            if attachment:
                assert disposition is not None and disposition.startswith("attachment;")
                assert filename in disposition
            else:
                assert disposition is None


# Item 9: a NUL byte in a multipart file name


@pytest.mark.parametrize("path", ["/sim/v1/media", "/api/v1/imessage/media"])
async def test_nul_in_upload_filename_is_422(api: Api, sim: SimHandle, path: str) -> None:
    with anyio.fail_after(10):
        before = sim.snapshot()
        body = (
            b"--XX\r\n"
            b'Content-Disposition: form-data; name="file"; filename="a\x00b.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
            b"hello\r\n--XX--\r\n"
        )
        r = await api.call(
            "POST", path, data=body, headers={"Content-Type": "multipart/form-data; boundary=XX"}
        )
        assert r.status == 422, r.body
        (problem,) = r.body["detail"]
        assert problem["loc"] == ["body", "file"] and problem["type"] == "value_error"
        assert "\x00" not in problem["msg"]
        assert sim.snapshot() == before


# Item 10: the database holding the keys is owner-only


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_sim_database_is_owner_only(
    tmp_path: Path, make_sim: SimFactory, umask_022: None, session: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(10):
        project = tmp_path / "project"
        project.mkdir(mode=0o755)
        folder = project / ".imbot"
        db = folder / "sim.sqlite3"
        sim = make_sim(db=str(db))
        api = Api(session, sim.base_url, sim.admin_key)
        await api.identity()  # a write, so the WAL exists
        files = sorted(folder.glob("sim.sqlite3*"))
        assert db in files
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(folder) == 0o700
        assert _mode(project) == 0o755  # a folder that was there keeps its mode


async def test_sim_database_left_readable_is_narrowed(
    tmp_path: Path, make_sim: SimFactory, umask_022: None
) -> None:
    tmp_path.chmod(0o755)
    db = tmp_path / "old.sqlite3"
    db.write_bytes(b"")  # as an older simulator, or a copy, left it
    db.chmod(0o644)
    make_sim(db=str(db))
    assert _mode(db) == 0o600
    assert _mode(tmp_path) == 0o755  # an existing folder may be the project's: untouched


# Item 11: webhooks do not follow redirects


@pytest.fixture
async def servers() -> AsyncIterator[tuple[str, list[bytes], list[bytes]]]:
    """A receiver answering 307 to a second local server, and what each one got."""
    redirected: list[bytes] = []
    elsewhere: list[bytes] = []

    async def other(request: web.Request) -> web.Response:
        elsewhere.append(await request.read())
        return web.Response(status=200)

    other_app = web.Application()
    other_app.router.add_post("/steal", other)
    other_runner = web.AppRunner(other_app, shutdown_timeout=0.5)
    await other_runner.setup()
    await web.TCPSite(other_runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{other_runner.addresses[0][1]}/steal"

    async def hook(request: web.Request) -> web.Response:
        redirected.append(await request.read())
        return web.Response(status=307, headers={"Location": target})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", redirected, elsewhere
    finally:
        await runner.cleanup()
        await other_runner.cleanup()


async def test_webhooks_do_not_follow_redirects(
    make_sim: SimFactory,
    session: aiohttp.ClientSession,
    servers: tuple[str, list[bytes], list[bytes]],
) -> None:
    url, redirected, elsewhere = servers
    with anyio.fail_after(10):
        sim = make_sim(webhook_retry_delays=(0.05, 0.05))
        api = Api(session, sim.base_url, sim.admin_key)
        ident = await api.identity()
        sub = await subscribe(api, ident["id"], url, ["imessage.received"])
        await api.connect(PHONE)
        await api.text(PHONE, "hello")

        async def logged() -> list[dict[str, Any]] | None:
            # Drained first, then read: read first, a retry could land between the two.
            if sim.pending() != 0:
                return None
            r = await api.get("/api/v1/webhooks/deliveries", params={"subscription_id": sub["id"]})
            rows: list[dict[str, Any]] = r.body["deliveries"]
            return rows or None

        rows = await wait_until(logged)
        # Each event: three attempts (one plus two retries), each a failure, none followed.
        assert len(rows) == 3 * len({row["event_id"] for row in rows})
        assert len(redirected) == len(rows)
        assert elsewhere == []
        assert {row["response_status"] for row in rows} == {307}
        assert not any(row["success"] for row in rows)
        assert all("redirect" in row["error_detail"] for row in rows)
