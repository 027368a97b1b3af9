"""A fast stub of the Inkbox API and a fast webhook receiver, in their own process.

``python -m benchmarks.stub`` binds 127.0.0.1 on a free port, prints ``PORT <n>`` and serves:

* ``POST /api/v1/imessage/messages`` — answers 201 ``{"message": {...}}`` at once (a valid
  outbound message row, ``status: "queued"``) and records ``(conversation_id, text, t,
  authorized)``: ``t`` is ``time.monotonic()`` on arrival (CLOCK_MONOTONIC is system-wide
  on Linux, so the driver compares it with its own send times), ``authorized`` whether an
  ``X-API-Key: ApiKey_...`` header came with it.
* ``GET /api/v1/imessage/triage-number`` — a canned router number (bots may ask at start-up).
* ``POST /hook`` — a webhook receiver for the simulator benchmark: answers 200 at once and
  records ``(event_type, message_id, status, conversation_id, t, signature_ok)``.
* ``/_bench/*`` — control for the driver: ``POST /_bench/reset`` (body ``{"secret": ...}``
  sets the key ``/hook`` verifies with),
  ``GET /_bench/wait?kind=reply|hook|outbound&count=N&timeout=S`` (long-poll until N records
  or the timeout: one request per round, so waiting costs the measured processes nothing),
  ``GET /_bench/replies``, ``GET /_bench/hooks``.

It is a minimal HTTP/1.1 server on ``asyncio.Protocol`` rather than ``aiohttp.web`` so that
the stub takes as little of the shared CPU as possible away from the process being measured.
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
from urllib.parse import parse_qs

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}
_TS = "2026-06-09T14:33:00Z"
_OUTBOUND = frozenset(("imessage.sent", "imessage.delivered", "imessage.delivery_failed"))


class Recorder:
    """What the stub saw, plus the long-poll waiters."""

    def __init__(self) -> None:
        self.replies: list[tuple[str | None, str | None, float, bool]] = []
        self.hooks: list[tuple[str | None, str | None, str | None, str | None, float, bool]] = []
        self.other: list[tuple[str, str]] = []
        self.secret: bytes = b""
        self.sent = 0
        self.outbound = 0
        self._waiters: list[tuple[str, int, asyncio.Transport, asyncio.TimerHandle]] = []

    def reset(self, secret: str | None) -> None:
        """Forget every record (waiters already answered stay answered)."""
        self.replies = []
        self.hooks = []
        self.outbound = 0
        self.other = []
        if secret is not None:
            self.secret = secret.removeprefix("whsec_").encode()

    def count(self, kind: str) -> int:
        """How many records of ``kind`` there are: ``reply``, ``hook``, or ``outbound``
        (webhooks about the agent's own messages: sent, delivered, delivery_failed)."""
        if kind == "reply":
            return len(self.replies)
        if kind == "outbound":
            return self.outbound
        return len(self.hooks)

    def add_waiter(
        self, kind: str, target: int, transport: asyncio.Transport, timeout: float
    ) -> None:
        """Answer ``transport`` once ``kind`` reaches ``target`` records, or at the timeout."""
        if self.count(kind) >= target:
            _respond(transport, 200, {"count": self.count(kind)}, keep_alive=True)
            return
        loop = asyncio.get_running_loop()
        entry: list[Any] = []
        handle = loop.call_later(timeout, self._expire, entry)
        item = (kind, target, transport, handle)
        entry.append(item)
        self._waiters.append(item)

    def _expire(self, entry: list[Any]) -> None:
        item = entry[0]
        if item in self._waiters:
            self._waiters.remove(item)
            _respond(item[2], 200, {"count": self.count(item[0])}, keep_alive=True)

    def notify(self, kind: str) -> None:
        """Answer the waiters of ``kind`` whose target has been reached."""
        if not self._waiters:
            return
        n = self.count(kind)
        for item in list(self._waiters):
            if item[0] == kind and n >= item[1]:
                self._waiters.remove(item)
                item[3].cancel()
                _respond(item[2], 200, {"count": n}, keep_alive=True)


def _respond(transport: asyncio.Transport, status: int, payload: Any, *, keep_alive: bool) -> None:
    if transport.is_closing():
        return
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n"
    )
    transport.write(head.encode() + body)
    if not keep_alive:
        transport.close()


def _message_row(n: int, conversation_id: str | None, text: str | None) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "conversation_id": conversation_id,
        "assignment_id": "00000000-0000-4000-9000-000000000001",
        "direction": "outbound",
        "remote_number": "+15555550142",
        "content": text,
        "message_type": "message",
        "service": "imessage",
        "send_style": None,
        "media": None,
        "was_downgraded": None,
        "status": "queued",
        "error_code": None,
        "error_message": None,
        "error_reason": None,
        "error_detail": None,
        "is_read": False,
        "is_blocked": False,
        "recipients": [
            {"remote_number": "+15555550142", "delivery_status": "queued", "service": "imessage"}
        ],
        "reactions": None,
        "created_at": _TS,
        "updated_at": _TS,
    }


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``start``; ``None`` until it is complete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            return bytes(out), end + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


class StubProtocol(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection."""

    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                decoded = _dechunk(self.buf, end + 4)
                if decoded is None:
                    return
                body, consumed = decoded
            else:
                length = int(headers.get("content-length", "0"))
                consumed = end + 4 + length
                if len(self.buf) < consumed:
                    return
                body = bytes(self.buf[end + 4 : consumed])
            del self.buf[:consumed]
            keep_alive = headers.get("connection", "").lower() != "close"
            self.handle(method, target, headers, body, keep_alive)

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        """Answer one request."""
        transport = self.transport
        assert transport is not None
        rec = self.rec
        path, _, query = target.partition("?")
        if method == "POST" and path == "/api/v1/imessage/messages":
            t = time.monotonic()
            try:
                payload = json.loads(body)
                cid, text = payload.get("conversation_id"), payload.get("text")
            except ValueError:
                _respond(transport, 400, {"detail": "bad json"}, keep_alive=keep_alive)
                return
            authorized = headers.get("x-api-key", "").startswith("ApiKey_")
            rec.sent += 1
            _respond(
                transport,
                201,
                {"message": _message_row(rec.sent, cid, text)},
                keep_alive=keep_alive,
            )
            rec.replies.append((cid, text, t, authorized))
            rec.notify("reply")
        elif method == "POST" and path == "/hook":
            t = time.monotonic()
            _respond(transport, 200, b'{"ok":true}', keep_alive=keep_alive)
            fields = _hook_fields(body)
            rec.hooks.append((*fields, t, _signature_ok(rec.secret, headers, body)))
            if fields[0] in _OUTBOUND:
                rec.outbound += 1
                rec.notify("outbound")
            rec.notify("hook")
        elif method == "GET" and path == "/api/v1/imessage/triage-number":
            _respond(
                transport,
                200,
                {"number": "+15550100000", "connect_command": "connect @bench"},
                keep_alive=keep_alive,
            )
        elif path.startswith("/_bench/"):
            self.control(method, path, query, body, keep_alive)
        else:
            rec.other.append((method, path))
            _respond(transport, 404, {"detail": "not found"}, keep_alive=keep_alive)

    def control(self, method: str, path: str, query: str, body: bytes, keep_alive: bool) -> None:
        """The driver's side: reset, long-poll wait, fetch records."""
        transport = self.transport
        assert transport is not None
        rec = self.rec
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if method == "POST" and path == "/_bench/reset":
            rec.reset(json.loads(body).get("secret") if body else None)
            _respond(transport, 200, {"ok": True}, keep_alive=keep_alive)
        elif path == "/_bench/wait":
            kind = params.get("kind", "reply")
            rec.add_waiter(
                kind, int(params["count"]), transport, float(params.get("timeout", "10"))
            )
        elif path == "/_bench/replies":
            _respond(
                transport, 200, {"replies": rec.replies, "other": rec.other}, keep_alive=keep_alive
            )
        elif path == "/_bench/hooks":
            _respond(transport, 200, {"hooks": rec.hooks}, keep_alive=keep_alive)
        else:
            _respond(transport, 404, {"detail": "unknown control"}, keep_alive=keep_alive)


def _hook_fields(body: bytes) -> tuple[str | None, str | None, str | None, str | None]:
    try:
        envelope = json.loads(body)
        message = (envelope.get("data") or {}).get("message") or {}
        return (
            envelope.get("event_type"),
            message.get("id"),
            message.get("status"),
            message.get("conversation_id"),
        )
    except (ValueError, AttributeError):
        return None, None, None, None


def _signature_ok(secret: bytes, headers: dict[str, str], body: bytes) -> bool:
    rid = headers.get("x-inkbox-request-id", "")
    ts = headers.get("x-inkbox-timestamp", "")
    mac = hmac.new(secret, f"{rid}.{ts}.".encode(), hashlib.sha256)
    mac.update(body)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), headers.get("x-inkbox-signature", ""))


async def serve(port: int) -> None:
    """Serve until SIGTERM or SIGINT; print ``PORT <n>`` once listening."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    server = await loop.create_server(
        lambda: StubProtocol(recorder), "127.0.0.1", port, backlog=1024
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m benchmarks.stub``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
