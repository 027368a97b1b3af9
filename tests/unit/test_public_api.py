"""The public surface: ``imbot.__all__`` is sorted, complete, importable and light.

``imbot/__init__.py`` names each export three times, for three readers (``__all__``, the
``TYPE_CHECKING`` imports, the lazy table ``_LAZY``); the tests here keep the three in step.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import inspect
import subprocess
import sys
import types
from pathlib import Path

import imbot

FACADE = Path(imbot.__file__)
PACKAGE = FACADE.parent


def public_names() -> set[str]:
    names = set()
    for name in dir(imbot):
        if name.startswith("_"):
            continue
        member = getattr(imbot, name)
        if isinstance(member, types.ModuleType | __future__._Feature):
            continue  # submodules and `from __future__ import annotations`
        names.add(name)
    return names | {"__version__"}


def test_all_is_sorted_and_equal_to_the_public_names() -> None:
    assert imbot.__all__ == sorted(imbot.__all__)
    assert set(imbot.__all__) == public_names()
    assert len(imbot.__all__) == len(set(imbot.__all__))


def type_checking_imports() -> dict[str, str]:
    """Name -> module, from the facade's ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(FACADE.read_text(encoding="utf-8"))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "imbot/__init__.py should have one `if TYPE_CHECKING:` block"
    imports: dict[str, str] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom), f"l.{node.lineno}: only `from m import a, b`"
        assert node.module is not None
        assert node.level == 0
        for alias in node.names:
            assert alias.asname is None, f"l.{node.lineno}: {alias.name} as {alias.asname}"
            assert alias.name not in imports, f"l.{node.lineno}: {alias.name} imported twice"
            imports[alias.name] = node.module
    return imports


def lazy_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for module, names in imbot._LAZY.items():
        assert list(names) == sorted(names), f"_LAZY[{module!r}] is not sorted"
        for name in names:
            assert name not in table, f"{name} is in _LAZY twice"
            table[name] = module
    return table


def test_all_the_lazy_table_and_the_type_checking_imports_agree() -> None:
    typed = type_checking_imports()
    lazy = lazy_table()
    assert lazy == typed, (
        "the TYPE_CHECKING imports and _LAZY in imbot/__init__.py disagree: "
        f"only imported {sorted(typed.keys() - lazy.keys())}, "
        f"only in _LAZY {sorted(lazy.keys() - typed.keys())}, "
        f"other module {sorted(n for n in typed.keys() & lazy.keys() if typed[n] != lazy[n])}"
    )
    exported = set(imbot.__all__) - {"__version__"}
    assert exported == set(lazy), (
        f"__all__ lacks {sorted(set(lazy) - exported)}; "
        f"__all__ has {sorted(exported - set(lazy))} that no module provides"
    )


def test_each_name_is_loaded_from_the_module_that_defines_it() -> None:
    for name, module in lazy_table().items():
        member = getattr(importlib.import_module(module), name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__ == module, f"{name} is defined in {member.__module__}"


def imports_of_the_facade(path: Path) -> list[int]:
    """Lines where the module at ``path`` imports the package ``imbot`` itself."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            lines += [node.lineno for alias in node.names if alias.name == "imbot"]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            target = ".".join((*base, node.module) if node.module else base)
            if target == "imbot":
                lines.append(node.lineno)
    return lines


def test_no_imbot_module_imports_the_facade_not_even_for_types() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != FACADE
        for line in imports_of_the_facade(path)
    ]
    assert offenders == [], (
        "import from the module that defines a name, not from the facade `imbot` "
        "(the version is in imbot._version):\n" + "\n".join(offenders)
    )


def test_every_name_resolves_and_is_documented() -> None:
    for name in imbot.__all__:
        member = getattr(imbot, name)
        if name == "__version__":
            assert member == "0.1.0"
            continue
        if inspect.isclass(member) or inspect.isfunction(member):
            assert inspect.getdoc(member), f"{name} has no docstring"


def test_the_core_names_are_there() -> None:
    for name in ("Bot", "Router", "Context", "SkipHandler", "AskTimeout", "Text", "Regex"):
        assert name in imbot.__all__
    assert imbot.Bot.__module__ == "imbot.bot.bot"


def test_unknown_names_raise_attribute_error() -> None:
    try:
        _ = imbot.DoesNotExist  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert "DoesNotExist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_imbot_is_light() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter(); import imbot; elapsed = time.perf_counter() - t\n"
        "heavy = ('aiohttp', 'aiohttp.web', 'pydantic', 'imbot.sim')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(elapsed, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split(maxsplit=1)
    assert float(out[0]) < 0.15
    assert out[1].strip() == "[]"


def test_from_imbot_import_bot_does_not_load_the_web_server_or_the_simulator() -> None:
    code = (
        "import sys; from imbot import Bot\n"
        "heavy = ('aiohttp.web', 'imbot.sim', 'imbot.bot.server')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "[]"
