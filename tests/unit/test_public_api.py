"""The public surface: ``imbot.__all__`` is sorted, complete, importable and light."""

from __future__ import annotations
import __future__

import inspect
import subprocess
import sys
import types

import imbot


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
