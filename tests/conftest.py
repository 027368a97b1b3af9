"""Shared test configuration: every test runs without the developer's Inkbox settings.

The test support is ``imbot.testing`` (public, the same kit users get) plus ``tests/support``
(what only imbot's own tests need); the pytest fixtures come from ``imbot.pytest_plugin``.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from tests.support.redis_server import INSTALL_HINT, RedisServer, redis_binary


@pytest.fixture(autouse=True)
def _no_inkbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """Keep the developer's own Inkbox settings out of every test."""
    for name in (
        "INKBOX_API_KEY",
        "INKBOX_BASE_URL",
        "IMBOT_HANDLE",
        "IMBOT_SIGNING_KEY",
        "IMBOT_STORE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.makedirs(tmp_path / "home", exist_ok=True)


@pytest.fixture(scope="session")
def redis_server_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServer]:
    """One real ``redis-server`` for the whole session (skipped where the binary is absent,
    never in CI: ``.ci/run`` installs it)."""
    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"redis-server is missing in CI; {INSTALL_HINT}")
        pytest.skip(f"redis-server is not installed; {INSTALL_HINT}")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> Iterator[RedisServer]:
    """The session's ``redis-server``, running and empty at the start of the test."""
    redis_server_session.start()  # a test may have stopped it
    redis_server_session.flush()
    yield redis_server_session
    redis_server_session.start()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty, running ``redis-server`` (``redis://127.0.0.1:<port>/0``)."""
    return redis_server.url
