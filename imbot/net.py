"""Listening sockets: one bind rule and one "cannot listen" message for every server imbot runs.

The bot's webhook server, the simulator and ``imbot dev`` all bind the same way
(``SO_REUSEADDR`` so a port in ``TIME_WAIT`` counts as free, IPv6 sockets v6-only), probe a
port before a slow start-up, and say the same thing when they cannot.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

__all__ = [
    "bind_listener",
    "cannot_listen",
    "listen_error_message",
    "probe_port",
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


def _configure(sock: socket.socket, family: int) -> None:
    if os.name == "posix":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def _addresses(host: str, port: int) -> list[tuple[int, int, int, Any]]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return [(family, kind, proto, address) for family, kind, proto, _, address in infos]


def bind_listener(host: str, port: int, *, backlog: int = 4096) -> socket.socket:
    """Bind and listen on the first address of ``host:port``; a non-blocking socket.

    Raises:
        OSError: the address cannot be bound; the message names it (see ``cannot_listen``).
    """
    family, kind, proto, address = _addresses(host, port)[0]
    sock = socket.socket(family, kind, proto)
    try:
        _configure(sock, family)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise cannot_listen(host, port, exc) from exc
    return sock


def probe_port(host: str, port: int, *, how: str = "") -> int:
    """Check that ``host:port`` can be bound, the way the server will bind it; return the port.

    Servers here bind only after a slow start-up (a lifespan, a child process); probing
    first makes a taken port fail before anything starts. Port 0 picks a free port and
    returns it. A port taken between the probe and the real bind still fails, there.

    Args:
        host: the interface.
        port: the port, or 0 for a free one.
        how: how the user picks another port, for the message (``"--port"``).

    Raises:
        OSError: the address cannot be bound; same errno, a message naming the address.
    """
    bound = port
    try:
        for family, kind, proto, address in _addresses(host, port):
            with socket.socket(family, kind, proto) as probe:
                _configure(probe, family)
                probe.bind(address)
                bound = int(probe.getsockname()[1])
    except OSError as exc:
        raise cannot_listen(host, port, exc, how=how) from exc
    return bound


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
