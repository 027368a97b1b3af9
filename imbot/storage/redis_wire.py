"""The hot path's connection to Redis: one socket, commands pipelined, replies parsed in C.

Every webhook costs two scripts (admit, advance). Through redis-py's pooled client each call
takes a connection from the pool, arms a timer, records metrics and makes a system call of
its own, which costs more CPU than the rest of the event's path. ``Wire`` is the lean road
for those scripts: commands issued in the same turn of the event loop go out in one write,
replies are matched to callers in order and parsed by ``hiredis`` (a dependency of the
``redis`` extra). A single timer per connection (not one per command) notices a server that
stopped answering. Blocking commands (``BLPOP``) and rare ones stay on redis-py's client.

``Scripts.run`` is what the engines call: over a ``Wire`` when ``hiredis`` is installed,
else over redis-py's client; ``EVALSHA`` first, the script's text once after a ``NOSCRIPT``
(a restarted server has forgotten its scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imbot.errors import StoreUnavailable

if TYPE_CHECKING:
    import redis.asyncio

    from imbot.storage.redis_conn import RedisTarget

__all__ = ["Scripts", "Wire", "WireError"]

_CONNECT_TIMEOUT = 2.0
_REPLY_TIMEOUT = 5.0
_RECONNECT_PAUSE = 0.1  # seconds a failed connection is not tried again
_TRANSIENT_REPLIES = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "BUSY")


class WireError(Exception):
    """Redis answered a command with an error (a bug in a script, a wrong type...)."""


class Wire(asyncio.Protocol):
    """One pipelined connection; connects on first use and again after a failure.

    Attributes:
        target: the server.
    """

    def __init__(self, target: RedisTarget, *, reply_timeout: float = _REPLY_TIMEOUT) -> None:
        """Prepare (nothing connects before the first command)."""
        import hiredis

        self.target = target
        self._hiredis = hiredis
        self._reply_timeout = reply_timeout
        self._transport: asyncio.Transport | None = None
        self._reader: Any = None
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._ready = False  # connected, and authenticated and on its database
        self._refused: tuple[float, StoreUnavailable] | None = None  # until when, and why
        self._closed = False

    # ------------------------------------------------------------------ calls

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply.

        Raises:
            StoreUnavailable: the server cannot be reached or stopped answering.
            WireError: the server answered with an error.
        """
        if not self._ready:
            await self._connect()
        return await self._send(args)

    def call_nowait(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue one command at once, without awaiting; ``None`` when not connected yet.

        The command leaves in this turn of the event loop's write, ahead of anything the
        caller does after it (``ctx.ask`` registers its question before sending its prompt).
        """
        return self._enqueue(args) if self._ready else None

    async def _send(self, args: tuple[Any, ...]) -> Any:
        return await self._enqueue(args)

    def _enqueue(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((future, time.monotonic() + self._reply_timeout))
        self._out.append(self._hiredis.pack_command(args))
        if self._flush_handle is None:
            # Commands issued in this turn of the loop leave together, in one write.
            self._flush_handle = loop.call_soon(self._flush)
        if self._watch is None:
            self._watch = loop.call_later(self._reply_timeout / 2, self._check)
        return future

    def _flush(self) -> None:
        self._flush_handle = None
        out, self._out = self._out, []
        transport = self._transport
        if transport is None or transport.is_closing():
            self._fail(StoreUnavailable(f"Redis at {self.target.display}: connection lost"))
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _check(self) -> None:
        self._watch = None
        if not self._pending:
            return
        if self._pending[0][1] < time.monotonic():
            error = StoreUnavailable(f"Redis at {self.target.display} stopped answering")
            self._fail(error)
            if self._transport is not None:
                self._transport.abort()
            return
        self._watch = asyncio.get_running_loop().call_later(self._reply_timeout / 2, self._check)

    def _fail(self, error: BaseException) -> None:
        pending, self._pending = self._pending, deque()
        self._out.clear()
        for future, _ in pending:
            if not future.done():
                future.set_exception(error)

    # ------------------------------------------------------------------ connecting

    async def _connect(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"Redis at {self.target.display}: the store is closed")
        if self._refused is not None and time.monotonic() < self._refused[0]:
            # A connection failed a moment ago: during an outage each webhook fails at once
            # instead of trying to connect again.
            raise self._refused[1]
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._connecting = None
                with contextlib.suppress(BaseException):
                    task.exception()

    async def _open(self) -> None:
        from redis.asyncio.connection import parse_url

        options = parse_url(self.target.url)
        import ssl

        secure = self.target.url.startswith("rediss:")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                await loop.create_connection(
                    lambda: self,
                    options.get("host", "localhost"),
                    int(options.get("port", 6379)),
                    ssl=ssl.create_default_context() if secure else None,
                )
        except (OSError, TimeoutError) as exc:
            error = StoreUnavailable(
                f"Redis at {self.target.display} is unreachable: {exc or type(exc).__name__}"
            )
            self._refused = (time.monotonic() + _RECONNECT_PAUSE, error)
            raise error from exc
        self._refused = None
        # Before any caller's command: these go first on the new connection.
        password, username = options.get("password"), options.get("username")
        if password:
            await self._send(("AUTH", *([username] if username else []), password))
        if int(options.get("db", 0)):
            await self._send(("SELECT", int(options["db"])))
        self._ready = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start reading replies on a new connection."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._reader = self._hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        """Hand each complete reply to the oldest caller still waiting."""
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        reply_error = self._hiredis.ReplyError
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not pending:
                continue  # cannot happen: Redis answers only what was asked
            future, _ = pending.popleft()
            if future.done():  # its caller was cancelled: the reply is dropped
                continue
            if isinstance(reply, reply_error):
                future.set_exception(self._error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail what is waiting; the next call connects again."""
        self._transport = None
        self._ready = False
        self._fail(StoreUnavailable(f"Redis at {self.target.display}: connection lost ({exc})"))

    def _error(self, message: str) -> Exception:
        if message.startswith(_TRANSIENT_REPLIES):
            return StoreUnavailable(f"Redis at {self.target.display}: {message}")
        return WireError(message)

    async def close(self) -> None:
        """Close the connection; later calls fail."""
        self._closed = True
        self._ready = False
        transport, self._transport = self._transport, None
        for handle in (self._flush_handle, self._watch):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._watch = None
        if transport is not None:
            transport.close()
        self._fail(StoreUnavailable(f"Redis at {self.target.display}: the store is closed"))


def _has_hiredis() -> bool:
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


class Scripts:
    """Runs the engines' Lua scripts, by SHA, over a ``Wire`` (or redis-py without hiredis).

    Attributes:
        wire: the pipelined connection, or ``None`` when hiredis is missing.
    """

    def __init__(
        self, target: RedisTarget, client: redis.asyncio.Redis, *, lean: bool | None = None
    ) -> None:
        """Prepare; ``lean=False`` forces redis-py's client (tests of the fallback)."""
        self._client = client
        self._guard_target = target
        use_wire = _has_hiredis() if lean is None else lean
        self.wire: Wire | None = Wire(target) if use_wire else None
        self._shas: dict[str, str] = {}

    def _sha(self, source: str) -> str:
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        return sha

    async def run(self, source: str, args: Sequence[Any]) -> Any:
        """Run a script with ``args`` (no keys: the scripts build them from the prefix).

        Raises:
            StoreUnavailable: the server cannot be reached.
        """
        sha = self._sha(source)
        wire = self.wire
        if wire is not None:
            try:
                return await wire.call("EVALSHA", sha, 0, *args)
            except WireError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            await wire.call("SCRIPT", "LOAD", source)
            return await wire.call("EVALSHA", sha, 0, *args)
        return await self._run_pooled(source, sha, args)

    async def call(self, *args: Any) -> Any:
        """Send one plain command (``HMGET``...) the same way.

        Raises:
            StoreUnavailable: the server cannot be reached.
        """
        if self.wire is not None:
            return await self.wire.call(*args)
        from imbot.storage.redis_conn import unavailable

        with unavailable(self._guard_target):
            return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    def call_nowait(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue a plain command at once on the pipelined connection (``None``: not possible
        now, without hiredis or before the connection is up; use ``call``)."""
        return self.wire.call_nowait(*args) if self.wire is not None else None

    async def _run_pooled(self, source: str, sha: str, args: Sequence[Any]) -> Any:
        from redis.exceptions import NoScriptError

        from imbot.storage.redis_conn import unavailable

        with unavailable(self._guard_target):
            try:
                return await self._client.evalsha(sha, 0, *args)
            except NoScriptError:
                await self._client.script_load(source)
                return await self._client.evalsha(sha, 0, *args)

    async def close(self) -> None:
        """Close the pipelined connection."""
        if self.wire is not None:
            await self.wire.close()
