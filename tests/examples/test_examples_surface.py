"""Every example is a runnable bot that teaches only the public API."""

from __future__ import annotations

import ast

import pytest
from support import EXAMPLES, load_example

from imbot import Bot

NAMES = sorted(path.stem for path in EXAMPLES.glob("*.py"))


def test_the_expected_examples_exist() -> None:
    assert NAMES == ["agent", "commands", "echo", "media", "stateful", "tapbacks"]


@pytest.mark.parametrize("name", NAMES)
def test_has_a_bot_attribute(name: str) -> None:
    # `imbot dev examples/NAME.py` looks for the module attribute `bot`.
    assert isinstance(load_example(name).bot, Bot)


# The facade, and imbot.ai: the optional pydantic-ai adapter, its own documented entry point.
PUBLIC = {"imbot", "imbot.ai"}


@pytest.mark.parametrize("name", NAMES)
def test_imports_only_the_public_surface(name: str) -> None:
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("imbot"):
            assert node.module in PUBLIC, f"{name}.py imports from {node.module}"
        if isinstance(node, ast.Import):
            assert all(not a.name.startswith("imbot.") for a in node.names), name


@pytest.mark.parametrize("name", NAMES)
def test_has_a_docstring_saying_how_to_run_it(name: str) -> None:
    doc = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text()))
    assert doc and f"imbot dev examples/{name}.py" in doc


def test_echo_fits_in_ten_lines() -> None:
    assert len((EXAMPLES / "echo.py").read_text().splitlines()) <= 10
