"""A griffe extension for the API reference: ``Example:`` sections render as code.

imbot's docstrings use Google style with a singular ``Example:`` heading, which griffe reads
as a plain admonition, so ``>>>`` lines would render as nested quotes. This renames the
heading to ``Examples:`` before parsing, and griffe then renders doctest lines as Python.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Treat ``Example:`` like ``Examples:`` in every docstring."""

    def on_instance(
        self,
        *,
        node: ast.AST | griffe.ObjectNode,
        obj: griffe.Object,
        agent: griffe.Visitor | griffe.Inspector,
        **kwargs: Any,
    ) -> None:
        """Rewrite the heading in the object's docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
