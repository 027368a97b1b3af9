"""Sharing a port (``imbot.net``): how ``imbot run --workers`` holds it and binds it."""

from __future__ import annotations

import errno
import socket
import sys
import time

import pytest

from imbot.net import bind_listener, probe_port, reserve_port, reuse_port_supported

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")


def _accepted(listeners: list[socket.socket]) -> list[int]:
    counts = []
    for listener in listeners:
        count = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            conn.close()
            count += 1
        counts.append(count)
    return counts


def test_reuse_port_is_supported_on_linux() -> None:
    assert reuse_port_supported()


def test_workers_bind_the_reserved_port_and_share_its_connections() -> None:
    holder = reserve_port("127.0.0.1", 0)
    port = holder.getsockname()[1]
    workers = [bind_listener("127.0.0.1", port, reuse_port=True) for _ in range(2)]
    clients = []
    try:
        for _ in range(40):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        # The kernel queues each connection on one worker's socket; the holder, bound but
        # not listening, has no queue at all.
        with pytest.raises(OSError) as not_listening:
            holder.accept()
        assert not_listening.value.errno == errno.EINVAL
        for worker in workers:
            worker.setblocking(False)
        time.sleep(0.1)
        counts = _accepted(workers)
        assert sum(counts) == 40
        assert all(counts), counts  # both got some (all 40 on one: 2 x 2^-40)
    finally:
        for sock in (*clients, *workers, holder):
            sock.close()


def test_a_port_held_for_workers_is_taken_for_anyone_else() -> None:
    holder = reserve_port("127.0.0.1", 0)
    port = holder.getsockname()[1]
    worker = bind_listener("127.0.0.1", port, reuse_port=True)
    try:
        # A plain server (and a second group of workers probing first) is refused.
        with pytest.raises(OSError) as refused:
            bind_listener("127.0.0.1", port)
        assert refused.value.errno == errno.EADDRINUSE
        assert f"cannot listen on 127.0.0.1:{port}" in str(refused.value)
        with pytest.raises(OSError):
            probe_port("127.0.0.1", port, how="--port")
        # A worker of this group probes as it binds: the port is free for it.
        assert probe_port("127.0.0.1", port, reuse_port=True) == port
    finally:
        worker.close()
        holder.close()


def test_reserving_a_port_in_use_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as refused:
            reserve_port("127.0.0.1", port, how="--port")
    assert refused.value.errno == errno.EADDRINUSE
    assert "--port 0 picks a free one" in str(refused.value)
