"""Shared test configuration: every test runs without the developer's Inkbox settings.

The test support is ``imbot.testing`` (public, the same kit users get) plus ``tests/support``
(what only imbot's own tests need); the pytest fixtures come from ``imbot.pytest_plugin``.
"""

from __future__ import annotations

import os
import pathlib

import pytest


@pytest.fixture(autouse=True)
def _no_inkbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """Keep the developer's own Inkbox settings out of every test."""
    for name in ("INKBOX_API_KEY", "INKBOX_BASE_URL", "IMBOT_HANDLE", "IMBOT_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.makedirs(tmp_path / "home", exist_ok=True)
