"""A failed reply does not write the API key, the signing key or the human's text to the logs.

With JSON logs (the default when stderr is not a terminal) a reply that failed (409, 500,
the API unreachable) was logged with a traceback showing each frame's local variables,
request headers included: ``'X-API-Key': 'ApiKey_…'``, and the text being sent, which
quotes the human. Console logs did the same through Rich. Here ``imbot run`` runs as a
child process in each format, a reply fails each way, and the captured output is searched
for the secrets and the human's words.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from imbot.testing import SimAgent, message_event, simulated
from imbot.webhooks import sign
from tests.support import REPO_ROOT, free_port

PHONE = "+15555550123"

BOT = """\
from imbot import Bot

bot = Bot()


@bot.on_message()
async def echo(ctx):
    await ctx.reply("you said: " + ctx.text)
"""

# The error each way of failing raises: the log names it once the handler has failed (the
# client's own retry lines come before, and do not name it).
FAILURES = {
    "conflict": "ConversationReleased",
    "server_error": "ServerError",
    "unreachable": "ConnectError",
}


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INKBOX_", "IMBOT_"))}
    base["PYTHONPATH"] = str(REPO_ROOT)
    base.update(extra)
    return base


@contextmanager
def _imbot_run(app: Path, port: int, out: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``imbot run`` with stdout and stderr both written to ``out``; stopped on exit."""
    with out.open("wb") as sink:
        process = subprocess.Popen(
            # The failures are the handler's: skip the start-up check of the key and URL.
            [sys.executable, "-m", "imbot", "run", str(app), "--port", str(port), "--no-api-check"],
            env=_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            # A second SIGTERM cancels handlers still running; kill only if that hangs too.
            for _ in range(2):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        continue
            if process.poll() is None:
                process.kill()
                process.wait()


async def _wait_listening(process: subprocess.Popen[bytes], port: int, out: Path) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                assert process.poll() is None, out.read_text()
                await anyio.sleep(0.02)


async def _wait_for(out: Path, marker: str) -> None:
    deadline = time.monotonic() + 20
    while marker not in out.read_text():
        assert time.monotonic() < deadline, f"the failure was never logged:\n{out.read_text()}"
        await anyio.sleep(0.05)


@asynccontextmanager
async def _answering_500() -> AsyncIterator[str]:
    """A real HTTP server on loopback that answers every request with a 500."""

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"detail": "internal error"}, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _released_conversation(agent: SimAgent) -> str:
    """A conversation whose human connected, then was released: a reply into it is a 409."""
    await agent.connect(PHONE)
    conversations = [c async for c in agent.client.iter_conversations()]
    assert len(conversations) == 1
    for assignment in [a async for a in agent.admin.iter_assignments()]:
        await agent.admin.release_assignment(assignment.id)
    return conversations[0].id


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_a_failed_reply_logs_no_secret_and_no_message_text(
    tmp_path: Path, fmt: str, failure: str
) -> None:
    app = tmp_path / "bot.py"
    app.write_text(BOT)
    out = tmp_path / "output.log"
    human_text = f"my diary entry {uuid.uuid4().hex}"
    async with simulated("vault") as agent:
        conversation_id = "4d0a4f9e-3f5b-4c39-9f41-0c2b1e6a7d11"
        base_url = agent.sim.base_url
        async with _answering_500() as failing_url:
            if failure == "conflict":
                conversation_id = await _released_conversation(agent)
            elif failure == "server_error":
                base_url = failing_url
            else:
                base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
            port = free_port()
            with _imbot_run(
                app,
                port,
                out,
                INKBOX_API_KEY=agent.api_key,
                INKBOX_BASE_URL=base_url,
                IMBOT_SIGNING_KEY=agent.signing_key,
                IMBOT_LOG_FORMAT=fmt,
                IMBOT_LOG_LEVEL="INFO",
            ) as process:
                await _wait_listening(process, port, out)
                event = message_event(human_text, conversation_id=conversation_id, sender=PHONE)
                body = event.model_dump_json(exclude_unset=True).encode()
                headers = {**sign(body, agent.signing_key), "Content-Type": "application/json"}
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r,
                ):
                    assert r.status == 200
                await _wait_for(out, FAILURES[failure])

    logged = out.read_text()
    assert agent.api_key not in logged
    assert agent.api_key.removeprefix("ApiKey_") not in logged
    assert agent.signing_key not in logged
    assert agent.signing_key.removeprefix("whsec_") not in logged
    assert human_text not in logged
    if fmt == "json":
        lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
        failed = [line for line in lines if line["level"] in ("warning", "error")]
        assert failed, logged
        assert all("locals" not in frame for line in failed for frame in _frames(line))


def _frames(line: dict[str, object]) -> list[dict[str, object]]:
    exceptions = line.get("exception")
    if not isinstance(exceptions, list):
        return []
    return [frame for exc in exceptions for frame in exc.get("frames", [])]
