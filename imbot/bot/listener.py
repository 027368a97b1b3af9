"""Accepting connections within limits: the webhook server's ``Listener``.

asyncio's own accept loop takes every connection the kernel offers until the process runs
out of file descriptors; it then logs one error per failed ``accept`` and schedules one retry
per failure (thousands of lines a second), while idle connections hold every descriptor.
``serve_app`` accepts through a ``Listener`` instead:

- at most ``max_connections`` at once, kept below the open-files limit. At the cap, the
  connection that has waited longest without sending a request is closed to make room; when
  every connection is busy, accepting stops until one is answered or closes (new clients
  wait in the kernel's backlog instead of being refused);
- a connection sends a request's headers within ``header_timeout`` of opening, or of its
  previous answer, or it is closed (half-sent requests, idle keep-alive);
- running out of descriptors anyway (files, outbound connections) closes the longest-idle
  connection, or pauses accepting for a moment.

Warnings about all this go through a ``LogThrottle``: one line per kind per interval.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import cast

from imbot.bot.limits import LogThrottle
from imbot.log import get_logger

__all__ = ["Connection", "Listener"]

# The errors that mean "out of descriptors or memory", not "this connection went wrong".
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BATCH = 64  # accepts per wake-up, so one busy listener cannot starve the loop
_RETRY_DELAY = 0.5  # seconds before accepting again after running out with nothing to close

_log = get_logger("imbot.bot.server")


class Connection(asyncio.Protocol):
    """One accepted connection: the HTTP protocol it carries, seen by its ``Listener``.

    The server calls ``request_started`` when a request's headers are in and
    ``request_finished`` when its handler has answered; between the two the connection is
    busy and no header deadline applies (the handler bounds the body itself).
    """

    __slots__ = ("_inner", "_listener", "busy", "heard", "requests", "transport")

    def __init__(self, inner: asyncio.Protocol, listener: Listener) -> None:
        self._inner = inner
        self._listener = listener
        self.transport: asyncio.Transport | None = None
        self.busy = 0
        self.heard = False  # bytes arrived since the connection last went idle
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection in, then hand it to the HTTP protocol."""
        self.transport = cast(asyncio.Transport, transport)
        self._listener._opened(self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Pass the bytes on, noting that the client is not silent."""
        self.heard = True
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Pass the end of input on."""
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Count the connection out (a slot is free), then tell the HTTP protocol."""
        self._listener._lost(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Pass flow control on."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Pass flow control on."""
        self._inner.resume_writing()

    def request_started(self) -> None:
        """A request's headers are in: no header deadline until it is answered."""
        self.busy += 1
        self.requests += 1
        self._listener._went_busy(self)

    def request_finished(self) -> None:
        """The request was answered: the next one's headers are due within the timeout."""
        self.busy -= 1
        if not self.busy:
            self.heard = False
            self._listener._went_idle(self)


class Listener:
    """Accepts connections on a listening socket, within the limits the module describes.

    Example:
        >>> listener = Listener(sock, runner.server, max_connections=896, header_timeout=10)
        >>> await listener.start()
        >>> ...
        >>> await listener.aclose()

    Args:
        sock: a bound, listening, non-blocking socket; the listener closes it.
        protocol_factory: makes the protocol each connection carries (aiohttp's server).
        max_connections: connections held at once (already lowered to fit the limit).
        header_timeout: seconds a connection has to send a request's headers.
        throttle: where the warnings go, one line per kind per interval.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        max_connections: int,
        header_timeout: float,
        throttle: LogThrottle | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = protocol_factory
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._throttle = throttle or LogThrottle()
        self._open: set[Connection] = set()
        # Connections waiting for a request's headers, by deadline: the oldest comes first.
        self._idle: dict[Connection, float] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self._pending = 0  # accepted, not yet made into a connection
        self._server: asyncio.AbstractServer | None = None
        self._reading = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None

    @property
    def connections(self) -> int:
        """Connections open or being set up now."""
        return len(self._open) + self._pending

    async def start(self) -> None:
        """Start accepting."""
        try:
            self._resume()
        except NotImplementedError:
            # A loop without add_reader (Windows' proactor): asyncio accepts, the header
            # deadline still applies, the cap does not.
            self._server = await self._loop.create_server(self._accepted, sock=self._sock)

    async def aclose(self) -> None:
        """Stop accepting and close the socket; open connections are the server's to close."""
        self._closed = True
        self._pause()
        for handle in (self._timer, self._retry):
            if handle is not None:
                handle.cancel()
        if self._server is not None:
            self._server.close()
        self._sock.close()
        if self._starting:
            # A connection being set up belongs to the server within a loop iteration or two.
            await asyncio.wait(self._starting, timeout=1.0)
        self._throttle.close()

    def _protocol(self) -> Connection:
        return Connection(self._factory(), self)

    def _accepted(self) -> Connection:
        self._pending += 1  # what _accept counts when it accepts itself
        return self._protocol()

    def _resume(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._reading and not self._closed and self._server is None:
            self._loop.add_reader(self._sock.fileno(), self._accept)
            self._reading = True

    def _pause(self, retry: float | None = None) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False
        if retry is not None and self._retry is None:
            self._retry = self._loop.call_later(retry, self._resume)

    def _accept(self) -> None:
        for attempt in range(_ACCEPT_BATCH):
            if self.connections >= self.max_connections:
                if attempt:
                    # Whether another connection waits is unknown: the socket, still
                    # readable or not, says so on the next iteration.
                    return
                self._throttle.warning(
                    "server.connection_limit", max_connections=self.max_connections
                )
                if not self._evict():
                    self._pause()  # resumed when a connection is answered or closes
                    return
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._throttle.warning(
                    "server.accept_failed", error=str(exc), connections=self.connections
                )
                # A closed connection frees its descriptor on the next loop iteration:
                # accept again then; with nothing to close, after a pause.
                if exc.errno not in _EXHAUSTED or not self._evict():
                    self._pause(retry=_RETRY_DELAY)
                return
            self._pending += 1
            task = self._loop.create_task(self._connect(sock))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _connect(self, sock: socket.socket) -> None:
        made: list[Connection] = []

        def protocol() -> Connection:
            made.append(self._protocol())
            return made[0]

        try:
            await self._loop.connect_accepted_socket(protocol, sock)
        except Exception as exc:  # the peer left during set-up: nothing to serve
            sock.close()
            if not made or made[0].transport is None:
                self._pending -= 1
            _log.debug("server.connection_failed", error=str(exc))

    def _evict(self) -> bool:
        """Close the connection that has waited longest for a request; ``False`` if none."""
        if not self._idle:
            return False
        self._drop(next(iter(self._idle)))
        return True

    def _drop(self, conn: Connection) -> None:
        self._idle.pop(conn, None)
        self._open.discard(conn)  # counted as gone now: its descriptor is freed next iteration
        if conn.transport is not None:
            conn.transport.abort()

    def _opened(self, conn: Connection) -> None:
        self._pending -= 1
        self._open.add(conn)
        self._wait_for_headers(conn)

    def _went_busy(self, conn: Connection) -> None:
        self._idle.pop(conn, None)

    def _went_idle(self, conn: Connection) -> None:
        if conn in self._open:
            self._wait_for_headers(conn)
            if not self._reading:
                # Paused at the cap: an answered connection can make room. (The answer is
                # written before the loop comes back to accepting.)
                self._resume()

    def _wait_for_headers(self, conn: Connection) -> None:
        self._idle[conn] = self._loop.time() + self.header_timeout
        if self._timer is None:
            self._arm()

    def _lost(self, conn: Connection) -> None:
        self._idle.pop(conn, None)
        self._open.discard(conn)
        if not self._reading:
            self._resume()

    def _arm(self) -> None:
        if self._idle and not self._closed:
            deadline = next(iter(self._idle.values()))
            self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time()
        slow = 0
        while self._idle:
            conn, deadline = next(iter(self._idle.items()))
            if deadline > now:
                break
            # A keep-alive connection that went quiet after its answers is routine; one
            # that sent part of a request, or nothing at all, is worth a (throttled) line.
            slow += conn.heard or not conn.requests
            self._drop(conn)
        if slow:
            self._throttle.warning(
                "server.slow_clients_closed", count=slow, header_timeout=self.header_timeout
            )
        self._arm()
