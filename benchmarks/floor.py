"""The floor: the least a hand-written aiohttp echo bot can do, to measure imbot against.

Per webhook it does the same work the imbot echo bot does: check the HMAC signature and the
timestamp window, parse the JSON envelope, answer 200 at once, then reply in a background
task through one shared ``ClientSession`` (``POST /api/v1/imessage/messages``) and parse the
API's answer. No routing, no dedupe, no per-conversation ordering, no logging.

``python -m benchmarks.floor --port P --api-base URL --api-key KEY --secret SECRET``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import signal
import sys
import time
from typing import Any

from aiohttp import ClientSession, web

_OK = b'{"ok": true}'


def make_app(
    session: ClientSession, tasks: asyncio.TaskGroup, api_key: str, secret: str
) -> web.Application:
    """Build the one-route app; replies run as tasks of ``tasks``."""
    key = secret.removeprefix("whsec_").encode()
    auth = {"X-API-Key": api_key}

    async def reply(conversation_id: str, text: str | None) -> None:
        try:
            async with session.post(
                "/api/v1/imessage/messages",
                json={"conversation_id": conversation_id, "text": text},
                headers=auth,
            ) as resp:
                data: Any = json.loads(await resp.read())
                if resp.status != 201 or "message" not in data:
                    print(f"floor: reply failed {resp.status}", file=sys.stderr)
        except Exception as exc:  # a failed reply must not stop the server
            print(f"floor: reply error {exc!r}", file=sys.stderr)

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        rid = headers.get("X-Inkbox-Request-ID")
        ts = headers.get("X-Inkbox-Timestamp")
        sig = headers.get("X-Inkbox-Signature")
        if not (rid and ts and sig) or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return web.json_response({"error": "invalid signature"}, status=401)
        mac = hmac.new(key, f"{rid}.{ts}.".encode(), hashlib.sha256)
        mac.update(body)
        if not hmac.compare_digest("sha256=" + mac.hexdigest(), sig):
            return web.json_response({"error": "invalid signature"}, status=401)
        try:
            event = json.loads(body)
            message = (
                event["data"]["message"] if event["event_type"] == "imessage.received" else None
            )
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "malformed event"}, status=400)
        if message is not None:
            tasks.create_task(reply(message["conversation_id"], message.get("content")))
        return web.Response(body=_OK, content_type="application/json")

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    return app


async def serve(port: int, api_base: str, api_key: str, secret: str) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ClientSession(base_url=api_base) as session, asyncio.TaskGroup() as tasks:
        runner = web.AppRunner(make_app(session, tasks, api_key, secret), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m benchmarks.floor``."""
    parser = argparse.ArgumentParser(description="hand-written aiohttp echo bot (the floor)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.api_base, args.api_key, args.secret))


if __name__ == "__main__":
    main()
