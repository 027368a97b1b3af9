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

__all__ = ["bind_listener", "cannot_listen", "probe_port", "suggest_free_ports"]


def cannot_listen(host: str, port: int, exc: OSError, *, how: str = "") -> OSError:
    """The error to raise when ``host:port`` cannot be bound: same type and errno, a clear message.

    Args:
        host: the interface.
        port: the port asked for.
        exc: the error from ``bind``.
        how: how the user picks another port (``"--port"``); the message names it.
    """
    reason = exc.strerror or str(exc)
    where = f" with {how}" if how else ""
    if exc.errno == errno.EADDRINUSE:
        message = (
            f"cannot listen on {host}:{port}: {reason}; is another process using the port? "
            f"Stop it or pick another port{where} (0 picks a free one)"
        )
    else:
        message = f"cannot listen on {host}:{port}: {reason}"
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
