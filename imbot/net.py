"""Listening sockets: one bind rule and one "cannot listen" message for every server imbot runs.

The bot's webhook server, the simulator and ``imbot dev`` all bind the same way
(``SO_REUSEADDR`` so a port in ``TIME_WAIT`` counts as free, IPv6 sockets v6-only), probe a
port before a slow start-up, and say the same thing when they cannot.

``imbot run --workers N`` shares one port between N processes with ``SO_REUSEPORT``: each
worker binds its own listening socket with ``reuse_port=True`` and the kernel spreads new
connections across them, while the parent holds the port with ``reserve_port`` (bound, not
listening, so it never receives a connection itself).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any

__all__ = [
    "bind_listener",
    "cannot_listen",
    "listen_error_message",
    "probe_port",
    "reserve_port",
    "reuse_port_supported",
    "suggest_free_ports",
]


def listen_error_message(host: str, port: int, exc: OSError, *, how: str = "") -> str:
    """The one line that says why ``host:port`` cannot be bound, and what to do about it.

    Example:
        >>> import errno
        >>> listen_error_message("127.0.0.1", 80, OSError(errno.EACCES, "Permission denied"))
        'cannot listen on 127.0.0.1:80: Permission denied'

    Args:
        host: the interface.
        port: the port asked for.
        exc: the error from ``bind`` (or one ``cannot_listen`` made from it).
        how: the command-line option that picks the port (``"--port"``). Given, the line is
            written for someone at a shell and names it; omitted, it reads as a library error.
    """
    # From the errno, not exc.strerror: an error cannot_listen made carries the whole
    # message there, which would be said twice.
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    if exc.errno == errno.EADDRINUSE and how:
        return (
            f"port {port} on {host} is already in use; stop the other process or pick another "
            f"port with {how} ({how} 0 picks a free one)"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: {reason}; is another process using the port? "
            "Stop it or pick another port (0 picks a free one)"
        )
    return f"cannot listen on {host}:{port}: {reason}"


def cannot_listen(host: str, port: int, exc: OSError, *, how: str = "") -> OSError:
    """The error to raise when ``host:port`` cannot be bound: same type and errno, a clear message.

    Args:
        host: the interface.
        port: the port asked for.
        exc: the error from ``bind``.
        how: how the user picks another port (``"--port"``); the message names it (see
            ``listen_error_message``).
    """
    message = listen_error_message(host, port, exc, how=how)
    if exc.errno is None:
        return OSError(message)
    return type(exc)(exc.errno, message)


def reuse_port_supported() -> bool:
    """Whether several processes can share a port here, with the kernel balancing between them.

    Linux spreads new connections across the listening sockets bound with ``SO_REUSEPORT``;
    other systems either lack the option (Windows) or give every connection to one socket
    (macOS), which would leave all but one worker idle.
    """
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _configure(sock: socket.socket, family: int, *, reuse_port: bool = False) -> None:
    if os.name == "posix":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def _addresses(host: str, port: int) -> list[tuple[int, int, int, Any]]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return [(family, kind, proto, address) for family, kind, proto, _, address in infos]


def bind_listener(
    host: str, port: int, *, backlog: int = 4096, reuse_port: bool = False
) -> socket.socket:
    """Bind and listen on the first address of ``host:port``; a non-blocking socket.

    Args:
        host: the interface.
        port: the port, or 0 for a free one.
        backlog: connections the kernel queues before they are accepted.
        reuse_port: share the port with the other sockets bound with ``SO_REUSEPORT`` by
            this user (``imbot run --workers``); the kernel spreads connections across them.

    Raises:
        OSError: the address cannot be bound; the message names it (see ``cannot_listen``).
    """
    family, kind, proto, address = _addresses(host, port)[0]
    sock = socket.socket(family, kind, proto)
    try:
        _configure(sock, family, reuse_port=reuse_port)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise cannot_listen(host, port, exc) from exc
    return sock


def probe_port(host: str, port: int, *, how: str = "", reuse_port: bool = False) -> int:
    """Check that ``host:port`` can be bound, the way the server will bind it; return the port.

    Servers here bind only after a slow start-up (a lifespan, a child process); probing
    first makes a taken port fail before anything starts. Port 0 picks a free port and
    returns it. A port taken between the probe and the real bind still fails, there.

    Args:
        host: the interface.
        port: the port, or 0 for a free one.
        how: how the user picks another port, for the message (``"--port"``).
        reuse_port: probe as a worker sharing the port will bind it (``SO_REUSEPORT``): a
            port held by its siblings or its parent counts as free.

    Raises:
        OSError: the address cannot be bound; same errno, a message naming the address.
    """
    bound = port
    try:
        for family, kind, proto, address in _addresses(host, port):
            with socket.socket(family, kind, proto) as probe:
                _configure(probe, family, reuse_port=reuse_port)
                probe.bind(address)
                bound = int(probe.getsockname()[1])
    except OSError as exc:
        raise cannot_listen(host, port, exc, how=how) from exc
    return bound


def reserve_port(host: str, port: int, *, how: str = "") -> socket.socket:
    """Hold ``host:port`` for workers that will share it; the socket is bound, never listening.

    Port 0 is resolved here, once, so that every worker binds the same port. Only sockets
    with ``SO_REUSEPORT`` of the same user can bind the port beside it, and the kernel hands
    connections to listening sockets only, so the holder receives none. Probe the port
    first (``probe_port`` without ``reuse_port``): a group of workers already serving it
    would otherwise be joined, not refused.

    Args:
        host: the interface.
        port: the port, or 0 for a free one.
        how: how the user picks another port, for the message (``"--port"``).

    Returns:
        The bound socket; close it when the workers are gone.

    Raises:
        OSError: the address cannot be bound; same errno, a message naming the address.
    """
    family, kind, proto, address = _addresses(host, port)[0]
    sock = socket.socket(family, kind, proto)
    try:
        _configure(sock, family, reuse_port=True)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise cannot_listen(host, port, exc, how=how) from exc
    return sock


def suggest_free_ports(host: str = "127.0.0.1", count: int = 2) -> list[int]:
    """A few ports free right now on ``host``, to suggest in an error message."""
    found: list[int] = []
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
            found.append(int(sock.getsockname()[1]))
    except OSError:
        pass
    finally:
        for sock in sockets:
            sock.close()
    return found
