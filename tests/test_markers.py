"""The pytest markers declared in pyproject.toml: each one marks some test.

``--strict-markers`` already refuses a marker that is not declared; this is the other half
(issue 14, item 13: ``slow`` was declared and marked nothing, so ``-m "not slow"`` did not
do what it says).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    markers = config["tool"]["pytest"]["ini_options"]["markers"]
    return [line.split(":", 1)[0].strip() for line in markers]


@pytest.mark.parametrize("marker", _declared())
def test_every_declared_marker_marks_a_test(marker: str) -> None:
    used = re.compile(rf"\bmark\.{re.escape(marker)}\b")
    files = [p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name]
    users = [p for p in files if used.search(p.read_text(encoding="utf-8"))]
    assert users, f"the {marker!r} marker is declared in pyproject.toml but marks no test"
